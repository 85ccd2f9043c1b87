// GPT-2 forward pass on a tiny random checkpoint against a naive f64 GPT-2 written here from HF's
// modeling_gpt2 (Conv1D as x·W + b with W stored [in, out], split of c_attn into q | k | v, gelu_new,
// learned positions, lm_head tied to wte).

import path from 'node:path'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { WhittleError } from '../errors'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { createForward } from '.'
import { Gpt2Forward } from './gpt2-forward'
import {
  ACTIVATIONS,
  add,
  causalAttention,
  columns,
  expectMatchesNaive,
  largestNllGap,
  layerNorm,
  linear,
  map,
  nextTokenNll,
  randomWindows,
  record,
  tinyModelBench,
  TinyWeights,
  type RecordedInputs,
} from './testing/naive-reference'

const H = 32,
  L = 2,
  HEADS = 4,
  HD = 8,
  F = 64,
  V = 50,
  POSITIONS = 16,
  EPS = 1e-5,
  T = 12

interface Gpt2Layer {
  ln1: { w: Float64Array; b: Float64Array }
  attnW: Float64Array
  attnB: Float64Array
  projW: Float64Array
  projB: Float64Array
  ln2: { w: Float64Array; b: Float64Array }
  fcW: Float64Array
  fcB: Float64Array
  outW: Float64Array
  outB: Float64Array
}
interface Gpt2Params {
  wte: Float64Array
  wpe: Float64Array
  layers: Gpt2Layer[]
  lnf: { w: Float64Array; b: Float64Array }
}

function randomGpt2(seed: number): { weights: TinyWeights; params: Gpt2Params } {
  const t = new TinyWeights(seed)
  const wte = t.add('transformer.wte.weight', [V, H], 1)
  const wpe = t.add('transformer.wpe.weight', [POSITIONS, H], 0.5)
  const layers: Gpt2Layer[] = []
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}`
    layers.push({
      ln1: t.norm(`${p}.ln_1`, H),
      attnW: t.add(`${p}.attn.c_attn.weight`, [H, 3 * H], 0.25),
      attnB: t.add(`${p}.attn.c_attn.bias`, [3 * H], 0.2),
      projW: t.add(`${p}.attn.c_proj.weight`, [H, H], 0.25),
      projB: t.add(`${p}.attn.c_proj.bias`, [H], 0.2),
      ln2: t.norm(`${p}.ln_2`, H),
      fcW: t.add(`${p}.mlp.c_fc.weight`, [H, F], 0.25),
      fcB: t.add(`${p}.mlp.c_fc.bias`, [F], 0.2),
      outW: t.add(`${p}.mlp.c_proj.weight`, [F, H], 0.2),
      outB: t.add(`${p}.mlp.c_proj.bias`, [H], 0.2),
    })
  }
  return { weights: t, params: { wte, wpe, layers, lnf: t.norm('transformer.ln_f', H) } }
}

const CONFIG = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  n_embd: H,
  n_layer: L,
  n_head: HEADS,
  n_inner: F,
  vocab_size: V,
  n_positions: POSITIONS,
  layer_norm_epsilon: EPS,
  activation_function: 'gelu_new',
}

/** transformers.pytorch_utils.Conv1D: y = x · W + b with W [in, out]. */
function conv1d(x: Float64Array, W: Float64Array, b: Float64Array, inDim: number, outDim: number): Float64Array {
  const n = x.length / inDim
  const y = new Float64Array(n * outDim)
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o]
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W[i * outDim + o]
      y[r * outDim + o] = s
    }
  }
  return y
}

function naiveGpt2(p: Gpt2Params, windows: Int32Array[], inputs?: RecordedInputs): number[][] {
  return windows.map((tokens) => {
    let h: Float64Array = new Float64Array(T * H)
    for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) h[t * H + i] = p.wte[tokens[t] * H + i] + p.wpe[t * H + i]
    for (const [l, w] of p.layers.entries()) {
      const a = layerNorm(h, H, w.ln1.w, w.ln1.b, EPS)
      record(inputs, l, 'qkv', a)
      const qkv = conv1d(a, w.attnW, w.attnB, H, 3 * H)
      const att = causalAttention(
        columns(qkv, 3 * H, 0, H),
        columns(qkv, 3 * H, H, H),
        columns(qkv, 3 * H, 2 * H, H),
        T,
        HEADS,
        HD,
      )
      record(inputs, l, 'o', att)
      h = add(h, conv1d(att, w.projW, w.projB, H, H))
      const m = layerNorm(h, H, w.ln2.w, w.ln2.b, EPS)
      record(inputs, l, 'fc1', m)
      const inner = map(conv1d(m, w.fcW, w.fcB, H, F), ACTIVATIONS.gelu_new)
      record(inputs, l, 'fc2', inner)
      h = add(h, conv1d(inner, w.outW, w.outB, F, H))
    }
    const logits = linear(layerNorm(h, H, p.lnf.w, p.lnf.b, EPS), p.wte, null, H, V)
    return nextTokenNll(logits, tokens, V)
  })
}

describe('GPT-2 forward pass', () => {
  const bench = tinyModelBench('whittle-gpt2-')
  let model: LoadedModel
  let params: Gpt2Params
  const windows = randomWindows(3, T, V, 7)

  beforeAll(async () => {
    const m = randomGpt2(11)
    params = m.params
    model = await loadModel(await m.weights.write(path.join(bench.dir, 'gpt2'), CONFIG))
  })

  it('gives the NLLs and Linear inputs of a naive f64 GPT-2', async () => {
    const forward = await createForward(bench.pool, model)
    try {
      expect(forward).toBeInstanceOf(Gpt2Forward)
      await expectMatchesNaive(forward, windows, (inputs) => naiveGpt2(params, windows, inputs), [
        'qkv',
        'o',
        'fc1',
        'fc2',
      ])
    } finally {
      forward.close()
    }
  })

  it('transposes the Conv1D weights: reading c_proj as [out, in] would give other numbers', () => {
    const misread = { ...params, layers: params.layers.map((l) => ({ ...l, projW: transposeSquare(l.projW, H) })) }
    expect(largestNllGap(naiveGpt2(misread, windows), naiveGpt2(params, windows))).toBeGreaterThan(1e-2)
  })

  it('gives the same NLLs one window per pass as all windows in one pass', async () => {
    const forward = await createForward(bench.pool, model)
    try {
      const together = await forward.windowNll(windows)
      vi.spyOn(forward, 'windowsPerPass').mockReturnValue(1)
      const oneByOne = await forward.windowNll(windows)
      expect(oneByOne).toEqual(together)
    } finally {
      forward.close()
    }
  })

  it('frees every kernel buffer it took on close', async () => {
    const before = bench.pool.arena.liveBytes
    const forward = await createForward(bench.pool, model)
    await forward.windowNll(windows.slice(0, 1))
    forward.close()
    expect(bench.pool.arena.liveBytes).toBe(before)
  })

  it('refuses windows longer than the learned positions and tokens outside the vocabulary', async () => {
    const forward = await createForward(bench.pool, model)
    try {
      const long = randomWindows(1, POSITIONS + 1, V, 3)
      await expect(forward.windowNll(long)).rejects.toThrow(/exceed the model's 16 learned positions/)
      await expect(forward.windowNll(long)).rejects.toBeInstanceOf(WhittleError)
      await expect(forward.windowNll([Int32Array.from([1, 2, V])])).rejects.toThrow(
        /token id 50 outside the vocabulary/,
      )
    } finally {
      forward.close()
    }
  })

  it('refuses an activation it has no kernel for, naming the config', async () => {
    const m = randomGpt2(5)
    const odd = await loadModel(
      await m.weights.write(path.join(bench.dir, 'gpt2-swish'), { ...CONFIG, activation_function: 'swish' }),
    )
    const err = await createForward(bench.pool, odd).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WhittleError)
    expect((err as WhittleError).code).toBe('unsupported')
    expect((err as WhittleError).message).toMatch(/config\.json: activation_function 'swish'/)
  })

  it('refuses an architecture it does not know', async () => {
    const m = randomGpt2(6)
    const unknown = await loadModel(
      await m.weights.write(path.join(bench.dir, 'mystery'), { architectures: ['MysteryForCausalLM'], hidden_size: H }),
    )
    const err = await createForward(bench.pool, unknown).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WhittleError)
    expect((err as WhittleError).code).toBe('unsupported')
    expect((err as WhittleError).message).toMatch(/MysteryForCausalLM/)
  })
})

function transposeSquare(W: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n)
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) out[c * n + r] = W[r * n + c]
  return out
}
