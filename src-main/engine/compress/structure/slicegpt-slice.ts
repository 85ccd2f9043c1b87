// SliceGPT (Ashkboos et al. 2024) on a Llama-family model, sequentially as the paper's code does:
//
//  1. fold every RMSNorm's scale into the Linears that read it (and the final norm's into lm_head);
//  2. take the basis of the embeddings' output from a PCA (eigenvectors of Σ xᵀx over the calibration
//     tokens, no centring), rotate and slice the embedding;
//  3. per layer: rotate q/k/v into the incoming basis; run the layer with o_proj still writing the
//     original coordinates and take the PCA of the residual where it enters the MLP; rotate o_proj and
//     gate/up into that basis; run again for the PCA of the block's output; rotate down_proj into it. The
//     shortcut matrices carry the residual between the bases (slicegpt-rotate.ts). The block's output,
//     run once more through the finished layer, is the next layer's input, so each PCA sees what the
//     sliced model upstream really produces.
//  4. rotate lm_head into the last basis.
//
// The calibration passes run on the kernels as one-layer sliced models (forward/sliced-llama-forward.ts,
// its slicedResidual hook); the rotations themselves are f64 loops in JS, which suits models up to a few
// hundred million parameters.

import { tensorName } from '../../arch'
import { shortcutName } from '../../arch/sliced-llama'
import { KernelHessian } from '../../calibration/kernel-hessian'
import { WhittleError } from '../../errors'
import { createForward } from '../../forward'
import { readTensorF32 } from '../../formats/read'
import { throwIfCancelled } from '../../jobs/cancel'
import type { LoadedModel } from '../../model/loaded-model'
import type { WorkerPool } from '../../pool/worker-pool'
import { symmetricEigen } from '../linalg/symmetric-eigen'
import {
  LLAMA_LINEARS,
  biasName,
  ones,
  oneLayerModel,
  requiredName,
  resultModel,
  type LlamaLinear,
  type NewTensor,
  type PassLayer,
} from './slicegpt-model'
import {
  basisChange,
  foldColumns,
  identityBasis,
  liftInputs,
  liftOutputs,
  rotateInputs,
  rotateOutputs,
  type Basis,
} from './slicegpt-rotate'

export interface SliceGptOptions {
  /** Residual width kept at every point (the same everywhere, as in the paper). */
  width: number
  /** The slicing fraction asked for, recorded in the config key. */
  fraction: number
  /** 'sliced': narrower tensors and shortcut matrices; 'dense': lifted back to the hidden size, a plain Llama. */
  form: 'sliced' | 'dense'
  windows: Int32Array[]
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export interface SliceGptResult {
  model: LoadedModel
  /** The residual width at each of the 2L + 1 points. */
  dims: number[]
}

/** What SliceGPT produces before it is assembled into a model. */
interface SlicedTensors {
  /** New values of the model's own tensors, by name. */
  replaced: Map<string, NewTensor>
  /** Tensors the sliced model adds: the shortcut matrices, and lm_head where the embeddings were tied. */
  added: Map<string, NewTensor>
}

/** The output head's name when the source ties it to the embedding (HF's LlamaForCausalLM). */
const UNTIED_HEAD_NAME = 'lm_head.weight'

const READS_RESIDUAL: ReadonlySet<LlamaLinear> = new Set(['q', 'k', 'v', 'gate', 'up'])

/** Why a model cannot be sliced, as a typed error; nothing when it can. */
function requireSliceable(model: LoadedModel): void {
  const a = model.arch
  const fail = (why: string): never => {
    throw new WhittleError('unsupported', model.files.path, `slicegpt: ${why}`)
  }
  if (a.family !== 'llama') fail(`only the Llama family can be sliced, not ${a.family}`)
  if (a.slicing) fail('the model is already sliced')
  if (model.files.format === 'gguf' || !model.files.config)
    fail('slicing needs a Hugging Face checkpoint with config.json (not a GGUF)')
  for (let l = 0; l < a.layers; l++)
    for (const role of ['o', 'down'] as const) {
      const name = tensorName(a, l, role)
      if (name && biasName(model, name)) fail(`${name} has a bias, which SliceGPT's rotation does not handle here`)
    }
}

/** The principal basis of Σ xᵀx (eigenvectors by falling eigenvalue), `kept` columns kept. */
function principalBasis(gram: Float64Array, D: number, kept: number): Basis {
  return { q: symmetricEigen(gram, D).vectors, D, kept }
}

/** One calibration pass of a one-layer model over `hidden` (in place); the Gram of the residual at `point`. */
async function layerPass(
  pool: WorkerPool,
  model: LoadedModel,
  hidden: Float32Array,
  T: number,
  point: 'mlp' | 'out' | null,
  width: number,
): Promise<Float64Array | null> {
  const forward = await createForward(pool, model)
  const gram = point ? new KernelHessian(pool, width) : null
  const adds: Promise<void>[] = []
  try {
    await forward.block(0, hidden, T, {
      slicedResidual(_layer, at, x, M) {
        // x lives in kernel memory only during the call: the accumulator gets a copy.
        if (gram && at === point) adds.push(gram.add(x.slice(), M))
      },
    })
    await Promise.all(adds)
    return gram ? gram.toArray() : null
  } finally {
    forward.close()
    gram?.free()
  }
}

export async function sliceGpt(pool: WorkerPool, model: LoadedModel, o: SliceGptOptions): Promise<SliceGptResult> {
  requireSliceable(model)
  const a = model.arch
  const D = a.hiddenSize,
    L = a.layers,
    d = o.width
  if (!(Number.isInteger(d) && d >= 1 && d <= D))
    throw new WhittleError('validation', null, `slicegpt: a residual width of ${d} is outside 1..${D}`)
  if (!o.windows.length) throw new WhittleError('validation', null, 'slicegpt needs calibration windows for its PCA')
  const T = o.windows[0].length
  const rows = o.windows.length * T
  const read = async (layer: number | null, role: Parameters<typeof tensorName>[2]): Promise<Float32Array> =>
    readTensorF32(model.entry(requiredName(model, layer, role)))
  const progress = (f: number, m: string): void => o.onProgress?.(f, m)
  const bases: Basis[] = []
  const { replaced, added }: SlicedTensors = { replaced: new Map(), added: new Map() }

  // The embedding: its output's principal basis, then the rotated, sliced table.
  const embedName = requiredName(model, null, 'embed')
  const E = await read(null, 'embed')
  const V = model.entry(embedName).shape[0]
  const hidden = new Float32Array(rows * D)
  o.windows.forEach((w, i) =>
    w.forEach((t, j) => {
      if (t < 0 || t >= V) throw new WhittleError('validation', null, `token id ${t} outside the vocabulary (${V})`)
      hidden.set(E.subarray(t * D, (t + 1) * D), (i * T + j) * D)
    }),
  )
  const embedGram = new KernelHessian(pool, D)
  let basis: Basis
  try {
    await embedGram.add(hidden, rows)
    basis = principalBasis(embedGram.toArray(), D, d)
  } finally {
    embedGram.free()
  }
  bases.push(basis)
  const E1 = rotateInputs(E, V, basis)
  replaced.set(embedName, { shape: [V, d], values: E1 })
  hidden.fill(0)
  o.windows.forEach((w, i) => w.forEach((t, j) => hidden.set(E1.subarray(t * d, (t + 1) * d), (i * T + j) * D)))

  const full = identityBasis(D)
  for (let l = 0; l < L; l++) {
    throwIfCancelled(o.signal)
    progress(l / L, `layer ${l + 1}/${L}: PCA and rotation`)
    const attnNorm = await read(l, 'attn_norm'),
      ffnNorm = await read(l, 'ffn_norm')
    const w = {} as Record<LlamaLinear, NewTensor>
    for (const role of LLAMA_LINEARS) {
      const name = requiredName(model, l, role)
      const [r, c] = model.entry(name).shape
      let values = await read(l, role)
      if (role === 'q' || role === 'k' || role === 'v') values = foldColumns(values, r, c, attnNorm)
      if (role === 'gate' || role === 'up') values = foldColumns(values, r, c, ffnNorm)
      w[role] = { shape: [r, c], values }
    }
    const inBasis = basis
    const reading = (role: LlamaLinear, b: Basis): NewTensor => ({
      shape: [w[role].shape[0], b.kept],
      values: rotateInputs(w[role].values, w[role].shape[0], b),
    })
    const writing = (role: LlamaLinear, b: Basis): NewTensor => ({
      shape: [b.kept, w[role].shape[1]],
      values: rotateOutputs(w[role].values, w[role].shape[1], b),
    })
    const q = reading('q', inBasis),
      k = reading('k', inBasis),
      v = reading('v', inBasis)
    // Pass 1: attention rotated in, everything after it in the original coordinates.
    const pass1: PassLayer = {
      linears: { q, k, v, o: w.o, gate: w.gate, up: w.up, down: w.down },
      attnShortcut: basisChange(inBasis, full),
      mlpShortcut: basisChange(full, full),
      dims: [inBasis.kept, D, D],
    }
    const midGram = await layerPass(pool, oneLayerModel(model, l, pass1), hidden.slice(), T, 'mlp', D)
    const mid = principalBasis(midGram!, D, d)
    // Pass 2: the MLP reads the sliced mid basis; down_proj still writes the original coordinates.
    const oProj = writing('o', mid),
      gate = reading('gate', mid),
      up = reading('up', mid)
    const pass2: PassLayer = {
      linears: { q, k, v, o: oProj, gate, up, down: w.down },
      attnShortcut: basisChange(inBasis, mid),
      mlpShortcut: basisChange(mid, full),
      dims: [inBasis.kept, mid.kept, D],
    }
    const outGram = await layerPass(pool, oneLayerModel(model, l, pass2), hidden.slice(), T, 'out', D)
    const out = principalBasis(outGram!, D, d)
    const done: PassLayer = {
      linears: { q, k, v, o: oProj, gate, up, down: writing('down', out) },
      attnShortcut: pass2.attnShortcut,
      mlpShortcut: basisChange(mid, out),
      dims: [inBasis.kept, mid.kept, out.kept],
    }
    // The finished layer's output is the next layer's input.
    await layerPass(pool, oneLayerModel(model, l, done), hidden, T, null, 0)
    for (const role of LLAMA_LINEARS) replaced.set(requiredName(model, l, role), done.linears[role])
    replaced.set(requiredName(model, l, 'attn_norm'), ones(inBasis.kept))
    replaced.set(requiredName(model, l, 'ffn_norm'), ones(mid.kept))
    const qName = requiredName(model, l, 'q')
    added.set(shortcutName(qName, 'attn'), { shape: [inBasis.kept, mid.kept], values: done.attnShortcut })
    added.set(shortcutName(qName, 'mlp'), { shape: [mid.kept, out.kept], values: done.mlpShortcut })
    bases.push(mid, out)
    basis = out
  }

  // The output head reads the final norm: its scale folded in, then the last basis.
  const headName = tensorName(a, null, 'lm_head') ?? null
  const head = foldColumns(headName ? await read(null, 'lm_head') : E, V, D, await read(null, 'final_norm'))
  // Tied embeddings get their own head: the embedding and the head end up in different bases.
  const rotatedHead = { shape: [V, d], values: rotateInputs(head, V, basis) }
  if (headName) replaced.set(headName, rotatedHead)
  else added.set(UNTIED_HEAD_NAME, rotatedHead)
  replaced.set(requiredName(model, null, 'final_norm'), ones(basis.kept))
  progress(1, 'assembling the model')
  const dims = bases.map((b) => b.kept)
  const result =
    o.form === 'sliced'
      ? resultModel(model, replaced, added, { dims, fraction: o.fraction })
      : denseModel(model, { replaced, added }, headName ?? UNTIED_HEAD_NAME, bases)
  return { model: result, dims }
}

/**
 * The dense reconstruction: every sliced tensor lifted back to the original coordinates (W'·Q'ᵀ or
 * Q'·W'), norms of ones at the hidden size, no shortcuts: a plain Llama that transformers loads. It is
 * the original model with each Linear restricted to the kept subspaces; it equals the sliced model at
 * 0% slicing, while above that its residual keeps the components the shortcut matrices drop.
 */
function denseModel(model: LoadedModel, sliced: SlicedTensors, headName: string, bases: Basis[]): LoadedModel {
  const a = model.arch
  const D = a.hiddenSize,
    L = a.layers
  const replaced = new Map<string, NewTensor>(),
    added = new Map<string, NewTensor>()
  const lifted = (name: string): NewTensor => (sliced.replaced.get(name) ?? sliced.added.get(name))!
  const liftIn = (name: string, b: Basis): NewTensor => {
    const t = lifted(name)
    return { shape: [t.shape[0], D], values: liftInputs(t.values, t.shape[0], b) }
  }
  const liftOut = (name: string, b: Basis): NewTensor => {
    const t = lifted(name)
    return { shape: [D, t.shape[1]], values: liftOutputs(t.values, t.shape[1], b) }
  }
  replaced.set(requiredName(model, null, 'embed'), liftIn(requiredName(model, null, 'embed'), bases[0]))
  for (let l = 0; l < L; l++) {
    for (const role of LLAMA_LINEARS) {
      const name = requiredName(model, l, role)
      if (READS_RESIDUAL.has(role))
        replaced.set(name, liftIn(name, bases[role === 'q' || role === 'k' || role === 'v' ? 2 * l : 2 * l + 1]))
      else replaced.set(name, liftOut(name, bases[role === 'o' ? 2 * l + 1 : 2 * l + 2]))
    }
    replaced.set(requiredName(model, l, 'attn_norm'), ones(D))
    replaced.set(requiredName(model, l, 'ffn_norm'), ones(D))
  }
  replaced.set(requiredName(model, null, 'final_norm'), ones(D))
  const head = liftIn(headName, bases[2 * L])
  if (sliced.replaced.has(headName)) replaced.set(headName, head)
  else added.set(headName, head)
  return resultModel(model, replaced, added, null)
}
