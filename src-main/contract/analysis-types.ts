// The analysis part of the contract: the whole-model scan, perplexity, activation outliers and SmoothQuant's
// preview, importance matrices, head and layer importance, and the KV cache's ranges and costs. Split from
// api.ts, which re-exports every name here, so importers keep using api.ts.

import type { ModelId, TensorRole } from './basics'

export interface ScanCell {
  layer: number | null
  role: TensorRole
  name: string
  absmax: number
  std: number
  kurtosis: number
  outlierChannels: number
  /** Channels examined (input columns of the weight). */
  channels: number
  /** The overview's colour: log2(worst ÷ median input-channel absmax); 1-D tensors: log2(absmax ÷ std). */
  outlierScore: number
}

export interface ScanResult {
  modelId: ModelId
  k: number
  cells: ScanCell[]
  seconds: number
  bytes: number
}

/** Calibration windows for the analyses that run the model. Defaults: the bundled calibration text, 128 × 256, seed 0. */
export interface CalibrationRequest {
  /** Absolute path of a UTF-8 text file; absent = the bundled TinyStories calibration text. */
  text?: string
  samples?: number
  seqlen?: number
  seed?: number
}

/**
 * How a perplexity run cuts and scores its windows: 'gptq' (../shared's protocol, every next-token
 * prediction of every window) or 'llama.cpp' (llama-perplexity's: each window starts with BOS and only its
 * second half is scored), to put Whittle's number beside llama.cpp's for the same GGUF.
 */
export const PERPLEXITY_PROTOCOLS = ['gptq', 'llama.cpp'] as const
export type PerplexityProtocol = (typeof PERPLEXITY_PROTOCOLS)[number]

export interface PerplexityReport {
  ppl: number
  meanNll: number
  protocol: PerplexityProtocol
  /** Tokens in the whole text (BOS included). */
  tokens: number
  windows: number
  seqlen: number
  tokensPerSecond: number
  seconds: number
  text: string
}

/** Linears grouped by the tensor they read: q/k/v share one input, gate/up another. */
export type InputGroup = 'qkv' | 'o' | 'gate_up' | 'down'

export interface ActivationInput {
  layer: number
  group: InputGroup
  absmax: number[]
  meanAbs: number[]
  /**
   * Per channel Σx² / tokens: this input's row of an importance matrix (llama-imatrix's per-channel value
   * for every Linear reading it; what a gguf step's `imatrix: calibration` weights quantization with).
   */
  meanSq: number[]
  /** Channels whose calibration absmax exceeds the threshold. */
  outliers: number[]
}

export interface SmoothingPreview {
  layer: number
  group: 'qkv' | 'gate_up'
  /** Per α: max over channels of activation absmax after smoothing, max|X_j| / s_j. */
  activationRange: number[]
  /** Per α: max over channels of weight absmax after smoothing, max|W_j| · s_j. */
  weightRange: number[]
}

/**
 * One weight's entry of an importance matrix file (llama-imatrix's, or `whittle imatrix`'s): its input
 * channels' mean x², the same per-channel profile as an activation capture's `meanSq` for that input.
 */
export interface ImatrixTensorProfile {
  /** The entry's name in the file: a GGUF weight name (blk.0.attn_q.weight). */
  name: string
  /** Decoder block and role the name places it at (null for names outside the blocks). */
  layer: number | null
  role: TensorRole | null
  /** The input it weighs, as the activation view groups inputs (null where the role reads none of them). */
  group: InputGroup | null
  /** The open model's Linear at that place, when a model was given and its input has as many channels. */
  tensor: string | null
  /** Per input channel Σx² / count (averaged over experts for a merged MoE weight): what llama-quantize weighs by. */
  meanSq: number[]
  /** Tokens (GGUF imatrix) or calls (legacy .dat) the sums were taken over. */
  count: number
  /** Why the entry matches no Linear of the model (another model's imatrix, or another width). */
  note?: string
}

export interface ImatrixProfile {
  path: string
  format: 'gguf' | 'dat'
  chunkCount: number
  /** Tokens per chunk; null where the file does not say (legacy .dat). */
  chunkSize: number | null
  datasets: string[]
  /** In block order, then role order (q, k, v, o, gate, up, down). */
  tensors: ImatrixTensorProfile[]
}

export interface ActivationReport {
  threshold: number
  samples: number
  seqlen: number
  tokens: number
  inputs: ActivationInput[]
  /** Hidden-size inputs (qkv, gate_up): per channel, in how many of those inputs it is an outlier. */
  persistence: { channels: number; inputs: number; counts: number[] }
  alphas: number[]
  smoothing: SmoothingPreview[]
}

export interface HeadImportance {
  layers: number
  heads: number
  samples: number
  seqlen: number
  baselineNll: number
  /** [layer][head]: mean NLL increase when the head's output is zeroed. */
  ablation: number[][]
  /** [layer][head]: mean L2 norm of the head's contribution through o_proj. */
  proxy: number[][]
  /** Spearman rank correlation between the two measures over all heads. */
  rankCorrelation: number
}

export interface LayerImportance {
  samples: number
  seqlen: number
  baselineNll: number
  /** Per block: mean angular distance (arccos(cos)/π) between its input and output hidden states. */
  angularDistance: number[]
  /** Per block: mean NLL increase when the block is skipped. */
  skipDelta: number[]
}

export interface HeadWeights {
  layer: number
  head: number
  headDim: number
  /** Each slice max-pooled to at most 64 × 256, row-major. */
  slices: { role: 'q' | 'k' | 'v' | 'o'; rows: number; cols: number; values: number[]; sourceShape: [number, number] }[]
}

/** One layer's kv head: how large its cached keys (after RoPE) and values are, channel by channel. */
export interface KvHeadRanges {
  layer: number
  head: number
  /** max |k| per channel (head_dim values): a few large channels are the key outliers KIVI is built on. */
  keyAbsMax: number[]
  valueAbsMax: number[]
  /** Mean over tokens of (max − min) of the head's key / value vector: what a per-token grid must span. */
  keyTokenRange: number
  valueTokenRange: number
  /** The largest channel's absmax over the median channel's. */
  keyOutlierRatio: number
  valueOutlierRatio: number
}

/** One KV-cache setting measured: its perplexity and what it stores. */
export interface KvSchemeResult {
  /** e.g. 'token:4', 'kivi:2', 'q8_0' (the CLI's --kv syntax). */
  setting: string
  /** null when the model cannot take the setting (note says why). */
  ppl: number | null
  /** Stored bits per cached value, scales included. */
  keyBits: number
  valueBits: number
  bytesPerToken: number
  /** f16 cache bytes − this cache's, for the analysis' context length. */
  savedBytes: number
  /** llama.cpp's `--cache-type-k/-v` flags for the GGUF cache types; null for the others. */
  llamaCpp: string | null
  note?: string
}

/** The 'kv-cache' job's result. */
export interface KvCacheAnalysis {
  seqlen: number
  windows: number
  contextLength: number
  layers: number
  kvHeads: number
  headDim: number
  /** Perplexity with the cache unquantized. */
  baselinePpl: number
  /** Bytes per token of context of the f16 cache. */
  baselineBytesPerToken: number
  heads: KvHeadRanges[]
  schemes: KvSchemeResult[]
}
