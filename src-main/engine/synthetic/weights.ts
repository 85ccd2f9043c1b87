// What a synthetic Llama holds and how its values are made: N(0, 0.02²) matrices (the usual init scale),
// norms near 1, and in every layer a few input channels of the hidden stream scaled up, the way real
// LLMs concentrate magnitude in a handful of residual channels, so inspection has something to find.

import { encodeHalf } from '../numerics/float-encodings'
import type { LlamaPreset } from './presets'
import { NormalStream, hashSeed } from './random'

export type SyntheticDType = 'F32' | 'BF16' | 'F16'

export interface OutlierOptions {
  /** Input channels per layer scaled up in q, k, v, gate and up (0 for none). */
  channelsPerLayer: number
  /** Factor applied to those columns. */
  scale: number
}

export const DEFAULT_OUTLIERS: OutlierOptions = { channelsPerLayer: 4, scale: 12 }
export const WEIGHT_STD = 0.02
/** Norm weights are 1 + N(0, NORM_JITTER²), so their statistics are not degenerate. */
export const NORM_JITTER = 0.02
/** Output bytes per chunk handed to the writer. */
export const CHUNK_BYTES = 4 << 20

export interface PlannedTensor {
  name: string
  shape: number[]
  kind: 'matrix' | 'norm'
  layer: number | null
  /** Input columns multiplied by outlierScale. */
  outlierColumns: number[]
  outlierScale: number
}

export function bytesPerElement(dtype: SyntheticDType): number {
  return dtype === 'F32' ? 4 : 2
}

/** The outlier input channels of `layer`: distinct, sorted, fixed by the seed. */
export function outlierChannels(hiddenSize: number, seed: number, layer: number, count: number): number[] {
  const n = Math.min(count, hiddenSize)
  const stream = new NormalStream(hashSeed(seed, `outlier-channels/${layer}`))
  const chosen = new Set<number>()
  while (chosen.size < n) chosen.add(stream.nextInt(hiddenSize))
  return [...chosen].sort((a, b) => a - b)
}

/** Tensors in HF LlamaForCausalLM naming, in the order they are written. */
export function planLlamaTensors(p: LlamaPreset, seed: number, outliers: OutlierOptions): PlannedTensor[] {
  const h = p.hiddenSize
  const headDim = h / p.heads
  const plan: PlannedTensor[] = [
    {
      name: 'model.embed_tokens.weight',
      shape: [p.vocabSize, h],
      kind: 'matrix',
      layer: null,
      outlierColumns: [],
      outlierScale: 1,
    },
  ]
  for (let l = 0; l < p.layers; l++) {
    const at = `model.layers.${l}.`
    const hot =
      outliers.channelsPerLayer > 0 && outliers.scale !== 1
        ? outlierChannels(h, seed, l, outliers.channelsPerLayer)
        : []
    const matrix = (name: string, shape: number[], readsHidden: boolean): PlannedTensor => ({
      name: at + name,
      shape,
      kind: 'matrix',
      layer: l,
      outlierColumns: readsHidden ? hot : [],
      outlierScale: readsHidden ? outliers.scale : 1,
    })
    plan.push(
      matrix('self_attn.q_proj.weight', [p.heads * headDim, h], true),
      matrix('self_attn.k_proj.weight', [p.kvHeads * headDim, h], true),
      matrix('self_attn.v_proj.weight', [p.kvHeads * headDim, h], true),
      matrix('self_attn.o_proj.weight', [h, p.heads * headDim], false),
      matrix('mlp.gate_proj.weight', [p.intermediateSize, h], true),
      matrix('mlp.up_proj.weight', [p.intermediateSize, h], true),
      matrix('mlp.down_proj.weight', [h, p.intermediateSize], false),
      { name: `${at}input_layernorm.weight`, shape: [h], kind: 'norm', layer: l, outlierColumns: [], outlierScale: 1 },
      {
        name: `${at}post_attention_layernorm.weight`,
        shape: [h],
        kind: 'norm',
        layer: l,
        outlierColumns: [],
        outlierScale: 1,
      },
    )
  }
  plan.push({ name: 'model.norm.weight', shape: [h], kind: 'norm', layer: null, outlierColumns: [], outlierScale: 1 })
  if (!p.tiedEmbeddings)
    plan.push({
      name: 'lm_head.weight',
      shape: [p.vocabSize, h],
      kind: 'matrix',
      layer: null,
      outlierColumns: [],
      outlierScale: 1,
    })
  return plan
}

export function tensorBytes(t: PlannedTensor, dtype: SyntheticDType): number {
  return t.shape.reduce((a, b) => a * b, 1) * bytesPerElement(dtype)
}

/**
 * The tensor's bytes in row chunks of about CHUNK_BYTES; only the chunk being made is held. The values
 * depend on (seed, name) alone, never on the chunking.
 */
export function* tensorChunks(
  t: PlannedTensor,
  seed: number,
  dtype: SyntheticDType,
  chunkBytes = CHUNK_BYTES,
): Generator<Uint8Array> {
  const [rows, cols] = t.shape.length === 2 ? t.shape : [1, t.shape[0]]
  const stream = new NormalStream(hashSeed(seed, t.name))
  const rowsPerChunk = Math.max(1, Math.floor(chunkBytes / (cols * bytesPerElement(dtype))))
  const scratch = dtype === 'F32' ? null : new Float32Array(Math.min(rows, rowsPerChunk) * cols)
  for (let row = 0; row < rows; row += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - row) * cols
    const values = scratch ? scratch.subarray(0, n) : new Float32Array(n)
    if (t.kind === 'norm') {
      stream.fill(values, NORM_JITTER)
      for (let i = 0; i < n; i++) values[i] += 1
    } else {
      stream.fill(values, WEIGHT_STD)
    }
    if (t.outlierColumns.length) scaleColumns(values, cols, t.outlierColumns, t.outlierScale)
    if (!scratch) {
      yield new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
      continue
    }
    const half = new Uint16Array(n)
    encodeHalf(values, dtype as 'BF16' | 'F16', half)
    yield new Uint8Array(half.buffer)
  }
}

function scaleColumns(values: Float32Array, cols: number, columns: number[], scale: number): void {
  for (let base = 0; base < values.length; base += cols) {
    for (const c of columns) values[base + c] *= scale
  }
}
