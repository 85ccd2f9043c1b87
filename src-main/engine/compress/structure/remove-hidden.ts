// CoFi's hidden dimensions removed physically (z_hidden, Xia et al. 2022): the residual stream keeps
// dimensions `kept` of H. The embedding (and an untied lm_head) keep those columns, every Linear reading the
// stream (q, k, v, gate, up) those input columns, every Linear writing it (o, down) those output rows (and
// bias entries), every RMSNorm those weights. Heads keep their head_dim, so the config states head_dim
// explicitly beside the smaller hidden_size: a plain Llama config that transformers and Whittle load.
//
// RMSNorm over H′ dimensions divides by √(Σx²/H′ + ε′) where the gated model divided by √(Σx²/H + ε),
// the removed dimensions being exactly 0 in the gated residual stream. With ε′ = ε·H/H′,
// Σx²/H′ + ε′ = (H/H′)·(Σx²/H + ε), so norm weights scaled by √(H/H′) give exactly what the gated model
// computed: the removal is exact (to float rounding), because Llama's norms all run over the hidden
// dimension and share one ε.
//
// Before removal, the hidden gates' kept values are folded (foldHiddenGates): o and down rows by
// foldGates (cofi-gates.ts), the embedding's columns here; with a tied lm_head the final norm's weights are
// divided by the same gates, so the logits h·diag(w/z)·(E·diag(z))ᵀ stay what they were.

import { WhittleError } from '../../errors'
import { readTensorF32 } from '../../formats/read'
import type { ModelFiles, TensorEntry } from '../../formats/types'
import { modelFromFiles } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import { f32Entry, keepColBlocks, keepRowBlocks } from './restructure'

/** Tensor roles whose hidden-side dimension is their columns (input side) and rows (output side). */
const READS_STREAM = new Set(['q', 'k', 'v', 'gate', 'up', 'embed', 'lm_head'])
const WRITES_STREAM = new Set(['o', 'down'])
const NORMS = new Set(['attn_norm', 'ffn_norm', 'final_norm'])

function tensorOf(view: ModelView, role: string): string {
  const name = Object.entries(view.arch.places).find(([, p]) => p.role === role && !p.bias)?.[0]
  if (!name) throw new WhittleError('unsupported', view.files.path, `the model has no ${role} tensor`)
  return name
}

/**
 * Folds the hidden gates z (one per hidden dimension) into the embedding's columns, and with a tied
 * lm_head divides the final norm's weights by them (where z > 0), in place in `view`. o and down are
 * folded with the block's other gates (foldGates).
 */
export async function foldHiddenGates(view: ModelView, z: Float32Array): Promise<void> {
  const H = view.arch.hiddenSize
  if (z.length !== H) throw new Error(`foldHiddenGates: ${z.length} gates for hidden size ${H}`)
  const embedName = tensorOf(view, 'embed')
  const embed = await readTensorF32(view.entry(embedName))
  for (let r = 0; r < embed.length / H; r++) for (let k = 0; k < H; k++) embed[r * H + k] *= z[k]
  view.replace(embedName, embed)
  if (!view.arch.tiedEmbeddings) return
  const normName = tensorOf(view, 'final_norm')
  const norm = await readTensorF32(view.entry(normName))
  for (let k = 0; k < H; k++) if (z[k] > 0) norm[k] /= z[k]
  view.replace(normName, norm)
}

/** A view whose residual stream keeps hidden dimensions `kept` (ascending old indices). */
export async function removeHidden(view: ModelView, kept: number[]): Promise<ModelView> {
  const a = view.arch
  const H = a.hiddenSize,
    Hk = kept.length
  if (view.files.format === 'gguf')
    throw new WhittleError(
      'unsupported',
      view.files.path,
      'removing hidden dimensions physically from a GGUF source is not supported; use a safetensors source',
    )
  if (a.family !== 'llama' || a.slicing)
    throw new WhittleError('unsupported', view.files.path, 'hidden dimensions are removed from Llama models only')
  if (Hk === 0 || kept.some((k, i) => !(k >= 0 && k < H) || (i > 0 && k <= kept[i - 1])))
    throw new WhittleError('validation', view.files.path, `the kept hidden dimensions must be ascending in [0, ${H})`)
  if (!view.files.config)
    throw new WhittleError('unsupported', view.files.path, 'a smaller hidden size needs a config.json to record it')
  const normScale = Math.sqrt(H / Hk)
  const tensors: TensorEntry[] = []
  for (const t of view.files.tensors) {
    const place = a.places[t.name]
    const e = view.entry(t.name)
    const role = place?.role ?? 'other'
    if (place?.transposed)
      throw new WhittleError('unsupported', view.files.path, `${t.name}: Conv1D weights are not supported here`)
    if (READS_STREAM.has(role) && !place.bias) {
      const [rows, cols] = e.shape
      const w = await readTensorF32(e)
      tensors.push(f32Entry(e, t.name, [rows, Hk], keepColBlocks(w, rows, cols, 1, kept)))
    } else if (WRITES_STREAM.has(role)) {
      const w = await readTensorF32(e)
      const cols = e.shape.length === 2 ? e.shape[1] : 1
      const shape = e.shape.length === 2 ? [Hk, cols] : [Hk]
      tensors.push(f32Entry(e, t.name, shape, keepRowBlocks(w, cols, 1, kept)))
    } else if (NORMS.has(role) && !place.bias) {
      const w = await readTensorF32(e)
      tensors.push(
        f32Entry(
          e,
          t.name,
          [Hk],
          Float32Array.from(kept, (k) => w[k] * normScale),
        ),
      )
    } else if (role === 'other')
      throw new WhittleError('unsupported', view.files.path, `${t.name}: not a tensor whose hidden side is known`)
    else tensors.push(e) // q/k/v/gate/up biases live on the output side, untouched
  }
  const eps = a.normEps ?? 1e-5
  const config = { ...view.files.config, hidden_size: Hk, head_dim: a.headDim, rms_norm_eps: (eps * H) / Hk }
  const files: ModelFiles = { ...view.files, tensors, config }
  const model = modelFromFiles(files)
  return withReplacements({ ...model, runtime: view.runtime })
}
