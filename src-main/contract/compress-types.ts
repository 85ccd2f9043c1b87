// The compress and export part of the contract: recipes as presets, what a compression run reports (per
// tensor, per block, as a whole) and what an export is asked for and answers. Split from api.ts, which
// re-exports every name here, so importers keep using api.ts.

import type { GgufTypeFlags } from './gguf-export-types'
import type { ModelId } from './basics'
import type { RecipeDoc } from './recipe-doc'

/** A compression recipe as data (the YAML/JSON document; validated by the engine). */
export interface RecipePreset {
  id: string
  name: string
  description: string
  recipe: RecipeDoc
}

export interface CompressedTensor {
  name: string
  layer: number
  role: string
  step: number
  method: string
  format: string
  shape: [number, number]
  bitsPerWeight: number
  relWeightError: number
  relOutputError: number | null
  note?: string
  /** Fraction of zero weights after the step. */
  sparsity: number
  /** Parameters stored when they differ from rows × cols (low-rank factors). */
  storedParams?: number
  /** The N:M validator's verdict, when the step imposed a pattern. */
  nm?: { n: number; m: number; violations: number; groups: number; valid: boolean }
  /** Pruning steps: non-zero density of the weight pooled to at most 32 × 32 cells (row-major, 0..1). */
  mask?: { rows: number; cols: number; density: number[] }
  /** Non-uniform and vector quantizers: what they learned, for the per-tensor pictures. */
  grid?: LearnedGrid
}

/**
 * What a non-uniform or vector quantizer learned for one Linear (issue #16), small enough to cross the
 * bridge: the pictures that explain why a learned grid beats a uniform one.
 * - centroids: lookup tables (SqueezeLLM per output row, GOBO one per tensor) drawn on the histogram;
 *   `rows` holds at most 8 sample rows' tables (GOBO's one table as row −1: every row), `outlierFraction`
 *   what stayed in full precision.
 * - codebook2d: a GPTVQ 2-D codebook (one group's) over a sample of at most 2,000 weight pairs.
 * - salient: PB-LLM's kept-at-8-bit weights, as density pooled to at most 32 × 32 cells (row-major, 0..1).
 */
export type LearnedGrid =
  | { kind: 'centroids'; rows: { row: number; centroids: number[] }[]; outlierFraction: number }
  | { kind: 'codebook2d'; group: number; centroids: [number, number][]; points: [number, number][] }
  | { kind: 'salient'; rows: number; cols: number; density: number[]; salientFraction: number }

export interface CompressionPrediction {
  bitsPerWeight: number
  bytesBefore: number
  bytesAfter: number
  tensors: { name: string; method: string; format: string; bitsPerWeight: number }[]
}

export interface CompressionSummary {
  /** The compressed model, open in the engine like any other (tensor jobs work on it). */
  compressedModelId: ModelId
  sourceModelId: ModelId
  recipe: RecipeDoc
  pplBefore: number | null
  /** pplBefore was measured earlier on the same text, seqlen and windows (e.g. in the Run tab), not again. */
  pplBeforeReused: boolean
  pplAfter: number | null
  /** Perplexity after each step when there are several (pruning then quantization); the last equals pplAfter. */
  pplAfterStep: (number | null)[]
  /** Fraction of zero weights that pruning left in the compressed Linears (quantization codes of 0 do not count). */
  sparsity: number
  /** Parameter count of the whole model before and after (structural steps make it smaller); non-zero parameters after. */
  paramsBefore: number
  paramsAfter: number
  nonZeroParamsAfter: number
  /** Geometry before → after, when a structural step changed it. */
  structure?: { layers: [number, number]; heads: [number, number]; kvHeads: [number, number] }
  /** Each block's widths before → after, when a structural step changed any (the Structure view's bars). */
  blocks?: BlockShape[]
  evalText: string | null
  seqlen: number
  bitsPerWeight: number
  bytesBefore: number
  /** Stored compactly: compressed Linears at their bits per weight (GPTQ, compressed-tensors, GGUF files). */
  bytesAfter: number
  /** Written densely (safetensors at the held dtypes), where pruning and fake quantization save nothing. */
  bytesDenseAfter: number
  seconds: number
  tensors: CompressedTensor[]
}

/** One decoder block's widths, original → kept: residual width inside the block, heads, kv heads, MLP neurons. */
export interface BlockShape {
  layer: number
  hidden: [number, number]
  heads: [number, number]
  kvHeads: [number, number]
  intermediate: [number, number]
}

export type ExportFormat =
  | 'safetensors'
  | 'gptq'
  | 'compressed-tensors'
  /** compressed-tensors int-quantized (int8) or float-quantized (fp8) W8A8: one byte per weight, per-channel scales. */
  | 'compressed-tensors-w8a8'
  | 'gguf'
  /** compressed-tensors sparse: a pruned model's sparse Linears as bitmask + values (unstructured or 2:4). */
  | 'sparse-bitmask'
  | 'sparse-24-bitmask'
  /** SqueezeLLM's packed checkpoint: per Linear qweight codes and an fp16 lookup_table per row (+ CSR sparse part). */
  | 'squeezellm'

/** Export a model the engine has open (usually a compression result) to a new folder (GGUF: a file). */
export interface ExportRequest {
  modelId: ModelId
  format: ExportFormat
  /** Absolute destination; must not exist (exports never overwrite). */
  out: string
  /** gguf: a pure type or a llama.cpp mix, one of GGUF_EXPORT_TYPES (contract/gguf-export-types.ts; default Q8_0; F32 for lossless). */
  ggufType?: string
  /** gguf: llama-quantize's type-level flags (pure, output / token-embedding type, per-tensor patterns, …). */
  gguf?: GgufTypeFlags
  /** gptq: checkpoint zero convention (default 'gptq', v1). */
  gptqFormat?: 'gptq' | 'gptq_v2'
  /** safetensors: the float dtype of the dense weights (default: as the compressed model holds them). */
  dtype?: 'F32' | 'F16' | 'BF16'
  /** safetensors: shard size in bytes (default 5 GB). */
  shardBytes?: number
}

export interface ExportResult {
  /** Absolute path of what was written (a folder; GGUF: the folder holding the .gguf). */
  out: string
  format: ExportFormat
  files: { name: string; bytes: number }[]
  /** What the read-back check compared, e.g. "35 packed Linears decode bit-exactly; 7 other tensors equal". */
  verified: string
  /** whittle-report.html beside the export, or null when there is no compression report to write. */
  reportPath: string | null
  seconds: number
}
