// The one typed contract between the renderer and the engine.
// Electron exposes it through preload/contextBridge, web mode through a WebSocket;
// the renderer codes against `WhittleApi` and never learns which one it has.
// Everything here must stay plain JSON-serialisable data (it crosses IPC and WebSocket).

import type { MethodInfo } from './method-params'
import type { GgufExportPlan, GgufTypeFlags } from './gguf-export-types'
import type { RecipeDoc } from './recipe-doc'

export type { RecipeDoc, RecipeSweep, SweepValue } from './recipe-doc'

export type ModelId = string
export type JobId = string

/** Roles an architecture adapter assigns to tensors. */
export type TensorRole =
  | 'q'
  | 'k'
  | 'v'
  | 'qkv'
  | 'o'
  | 'gate'
  | 'up'
  | 'down'
  | 'fc1'
  | 'fc2'
  | 'attn_norm'
  | 'ffn_norm'
  | 'final_norm'
  | 'embed'
  | 'pos_embed'
  | 'lm_head'
  | 'other'

export interface ModelSummary {
  id: ModelId
  path: string
  /** 'safetensors' | 'gguf' */
  format: string
  /** How packed Linears are stored, e.g. "GPTQ 4-bit g128 act-order, sym"; absent when none are. */
  quantization?: string
  /** Adapter family: 'llama' | 'gpt2' | 'opt' | 'gpt-neox' | 'unknown' */
  architecture: string
  /** As declared by config.json or GGUF metadata, e.g. 'LlamaForCausalLM' or 'llama'. */
  declaredArchitecture: string
  layers: number
  hiddenSize: number
  heads: number
  kvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
  parameterCount: number
  /** dtype -> number of tensors */
  dtypes: Record<string, number>
  sizeOnDisk: number
  files: string[]
  tensorCount: number
  /** Non-fatal findings, e.g. config/tensor disagreements that were tolerated. */
  warnings: string[]
}

export interface TensorInfo {
  name: string
  /** PyTorch order: [out, in] for a Linear weight. */
  shape: number[]
  dtype: string
  byteLength: number
  role: TensorRole
  /** Decoder layer index, or null for tensors outside the blocks. */
  layer: number | null
}

export interface TensorStats {
  count: number
  /** Finite values only below. */
  min: number
  max: number
  mean: number
  std: number
  absmax: number
  /** Pearson kurtosis (normal = 3). */
  kurtosis: number
  zeroFraction: number
  nanCount: number
  infCount: number
}

export interface Histogram {
  lo: number
  hi: number
  counts: number[]
  /** Finite values below lo / above hi (none when the range is the data's own). */
  below: number
  above: number
}

export interface ChannelProfile {
  /** 'out' = one value per output row, 'in' = one per input column. */
  axis: 'out' | 'in'
  absmax: number[]
  l2: number[]
  median: number
  /** Indices whose absmax > k x median. */
  outliers: number[]
}

export interface TensorDetail {
  info: TensorInfo
  stats: TensorStats
  histogram: Histogram
  /** Present for 2-D (or higher, flattened to 2-D) tensors. */
  channels?: { out: ChannelProfile; in: ChannelProfile; k: number }
  /** Down-sampled |w| (max-pooled) for 2-D tensors, row-major rows x cols. */
  heatmap?: { rows: number; cols: number; values: number[]; sourceShape: [number, number] }
  /** How the checkpoint stores the tensor, when not as the plain values above (packed Linear, GGUF blocks). */
  storage?: TensorStorage
}

// How a tensor is stored when the checkpoint holds it in another form than the values the views decode:
// a GPTQ or compressed-tensors packed Linear (integer codes, scales, zero points, g_idx), or a GGUF block
// type (blocks of codes sharing fp16 scales).

/** One tensor of the checkpoint that holds part of a packed Linear. */
export interface StoredPart {
  /** The checkpoint's own tensor name, e.g. `model.layers.0.self_attn.q_proj.qweight`. */
  name: string
  /** What it holds: packed integer codes, scales, packed zero points, the input → group map, the decoded shape. */
  role: 'codes' | 'scales' | 'zeros' | 'g_idx' | 'shape'
  dtype: string
  shape: number[]
  byteLength: number
}

export interface PackedLinearStorage {
  kind: 'packed-linear'
  scheme: 'gptq' | 'compressed-tensors'
  /** e.g. "GPTQ 4-bit g128 act-order, sym" */
  label: string
  bits: number
  /** Inputs per group; -1 = one group per output row. */
  groupSize: number
  /** Groups each output row holds (rows of scales). */
  groups: number
  /** Declared by the config, or a g_idx that is not the sequential grouping. */
  actOrder: boolean
  symmetric: boolean
  parts: StoredPart[]
  /** Bits the parts take per decoded weight: 8 · their bytes ÷ (rows · cols). */
  bitsPerWeight: number
  /** How many weights hold each integer code: codes[q] for q = 0 .. 2^bits − 1. */
  codes: number[]
  /** How many (row, group) zero points hold each code, as the loader uses them; null when none are stored. */
  zeros: number[] | null
  /** The scales, decoded to f32. */
  scales: Histogram
}

/** One fp16 (or f32) scale field every block of a GGUF type carries. */
export interface BlockScaleField {
  /** ggml's field name: 'd' (the scale), 'dmin' (K-quants' min scale) or 'm' (the legacy types' min). */
  field: 'd' | 'dmin' | 'm'
  histogram: Histogram
}

export interface GgufBlockStorage {
  kind: 'gguf-blocks'
  /** ggml's type name, e.g. 'Q4_K'. */
  type: string
  /** e.g. "Q4_K · 256 per block · 144 B" */
  label: string
  blockElements: number
  blockBytes: number
  blocks: number
  bitsPerWeight: number
  /** Empty for a type whose scale is not a whole field (IQ1_M spreads it over its sub-block scales). */
  scales: BlockScaleField[]
}

export type TensorStorage = PackedLinearStorage | GgufBlockStorage

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

export interface PerplexityReport {
  ppl: number
  meanNll: number
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

export type JobSpec =
  | { kind: 'tensor'; modelId: ModelId; name: string; bins?: number; k?: number; range?: [number, number] }
  | { kind: 'scan'; modelId: ModelId; k?: number }
  | { kind: 'perplexity'; modelId: ModelId; text?: string; seqlen?: number; maxWindows?: number }
  | {
      kind: 'kv-cache'
      modelId: ModelId
      text?: string
      seqlen?: number
      maxWindows?: number
      /** KV-cache settings to measure ('token:4', 'kivi:2', 'q8_0', …); default: each scheme at usual widths. */
      settings?: string[]
      /** The context length the memory saving is computed for; default seqlen. */
      contextLength?: number
    }
  | { kind: 'activations'; modelId: ModelId; calibration?: CalibrationRequest; threshold?: number }
  | { kind: 'heads'; modelId: ModelId; calibration?: CalibrationRequest }
  | { kind: 'layers'; modelId: ModelId; calibration?: CalibrationRequest }
  | {
      kind: 'compress'
      modelId: ModelId
      recipe: RecipeDoc
      evalText?: string
      seqlen?: number
      maxEvalWindows?: number
    }
  | ({ kind: 'export' } & ExportRequest)

export type JobKind = JobSpec['kind']

export type JobState = 'queued' | 'running' | 'done' | 'error' | 'cancelled'

/** What a finished job of each kind produces (a kind missing here fails to compile JobUpdate). */
export interface JobResults {
  tensor: TensorDetail
  scan: ScanResult
  perplexity: PerplexityReport
  'kv-cache': KvCacheAnalysis
  activations: ActivationReport
  heads: HeadImportance
  layers: LayerImportance
  compress: CompressionSummary
  export: ExportResult
}

/** A finished job's kind with its result: what a job runner returns. */
export type JobOutcome = { [K in JobKind]: { kind: K; result: JobResults[K] } }[JobKind]

/** One optimizer step of a training (recovery) step, as its job's progress carries it. */
export interface TrainingStepPoint {
  /** 1-based: the step just finished. */
  step: number
  /** The objective: α·T²·KL + (1 − α)·CE (CE alone when nothing is distilled). */
  loss: number
  ce: number
  kl: number
  tokensPerSecond: number
  /** Seconds the remaining steps take at the rate so far. */
  etaSeconds: number
}

/** Perplexity on the eval text measured during training (distill's eval_every). */
export interface TrainingEvalPoint {
  /** 1-based: measured after this step. */
  step: number
  ppl: number
}

/**
 * Live numbers of a training step. Updates are rate-limited, so each one carries every step and eval
 * since the previous update (oldest first); a reader appends them, keyed by step.
 */
export interface TrainingProgress {
  /** Optimizer steps the training runs in all. */
  totalSteps: number
  steps: TrainingStepPoint[]
  evals: TrainingEvalPoint[]
}

/** Everything about a job's progress that does not depend on its kind. */
export interface JobStatus {
  id: JobId
  state: JobState
  /** 0..1 */
  progress: number
  message: string
  error?: string
  /** A job that trains is paused between two optimizer steps (its state stays 'running'). */
  paused?: boolean
  /** A job that trains: the steps and evals since the previous update. */
  training?: TrainingProgress
}

/**
 * One job's state as the engine reports it. A union over the kinds, so that checking `kind` narrows
 * `result`: `u.kind === 'perplexity'` makes `u.result` a PerplexityReport (present once state is 'done').
 */
export type JobUpdate = { [K in JobKind]: JobStatus & { kind: K; result?: JobResults[K] } }[JobKind]

export interface RecentModel {
  path: string
  openedAt: string
}

export interface AppInfo {
  mode: 'electron' | 'web'
  version: string
  /** True where a native open dialog exists (Electron). */
  canPickFiles: boolean
  demoPath: string | null
  /** The bundled eval text (TinyStories), for perplexity without choosing a file. */
  evalTextPath: string | null
  /** A model named on the command line (`--model`), to open instead of the demo on start. */
  startupPath: string | null
}

/** One compression run as a point on the Compare chart: its recipe, size and cost, and per-tensor errors. */
export interface ResultPoint {
  id: string
  /** ISO time the run ended. */
  at: string
  /** The source model's path (points are grouped by it). */
  modelPath: string
  modelName: string
  recipe: RecipeDoc
  /** The recipe in words, for tooltips. */
  label: string
  /** Over the compressed Linears. */
  bitsPerWeight: number
  bytesBefore: number
  bytesAfter: number
  bytesDenseAfter: number
  sparsity: number
  paramsAfter: number
  pplBefore: number | null
  pplAfter: number | null
  /** Perplexities compare only within one (text, seqlen, windows). */
  evalText: string | null
  seqlen: number
  maxEvalWindows: number | null
  tensors: {
    name: string
    method: string
    bitsPerWeight: number
    relWeightError: number
    relOutputError: number | null
  }[]
  /** The compressed model while this session still holds it (exportable); null for earlier sessions' points. */
  compressedModelId: ModelId | null
}

/** Every call the renderer can make. One function per call, each takes one plain object. */
export interface WhittleApi {
  appInfo(): Promise<AppInfo>
  /** Electron: shows a native dialog and returns the chosen path (null if cancelled). Web: always null. */
  pickModel(req: { folder: boolean }): Promise<string | null>
  openModel(req: { path: string }): Promise<ModelSummary>
  openDemo(): Promise<ModelSummary>
  recentModels(): Promise<RecentModel[]>
  listTensors(req: { modelId: ModelId }): Promise<TensorInfo[]>
  startJob(req: JobSpec): Promise<JobId>
  cancelJob(req: { id: JobId }): Promise<void>
  /**
   * A job's latest update as the engine holds it (null once forgotten, or never started here). Job events
   * are pushed, and a push can be lost (a dropped WebSocket); the renderer asks this to catch up.
   */
  jobStatus(req: { id: JobId }): Promise<JobUpdate | null>
  /** Holds a training job between two optimizer steps (the worker pool stays free); other jobs ignore it. */
  pauseJob(req: { id: JobId }): Promise<void>
  resumeJob(req: { id: JobId }): Promise<void>
  headWeights(req: { modelId: ModelId; layer: number; head: number }): Promise<HeadWeights>
  recipePresets(): Promise<RecipePreset[]>
  /** Validates a recipe (object or YAML/JSON text) and returns it normalised; errors name the step and field. */
  checkRecipe(req: { recipe?: RecipeDoc; text?: string }): Promise<RecipeDoc>
  recipeToYaml(req: { recipe: RecipeDoc }): Promise<string>
  predictCompression(req: { modelId: ModelId; recipe: RecipeDoc }): Promise<CompressionPrediction>
  /** A fresh destination path for an export of the model in a format (beside the source, never existing). */
  suggestExportPath(req: { modelId: ModelId; format: ExportFormat; ggufType?: string }): Promise<string>
  /** The HTML of a report this session exported (only paths returned in an ExportResult are readable). */
  readReport(req: { path: string }): Promise<string>
  /** A GGUF export's plan without writing it: each tensor's type, the policy rule that chose it, its size. */
  planGgufExport(req: { modelId: ModelId; ggufType: string; gguf?: GgufTypeFlags }): Promise<GgufExportPlan>
  /** Every compression result recorded for the model's source (this session's and earlier ones, UI and CLI). */
  listResults(req: { modelId: ModelId }): Promise<ResultPoint[]>
  /** Every compression method with its kind, summary and parameter specs (what recipe forms are built from). */
  listMethods(): Promise<MethodInfo[]>
  /** An importance matrix file (GGUF or legacy .dat): each entry's channel profile, placed on the model's Linears. */
  readImatrix(req: { path: string; modelId?: ModelId }): Promise<ImatrixProfile>
  /** Subscribe to job updates; returns an unsubscribe function. */
  onJob(listener: (update: JobUpdate) => void): () => void
}

/** Names of the request/response calls (everything but the event subscription). */
export const API_CALLS = [
  'appInfo',
  'pickModel',
  'openModel',
  'openDemo',
  'recentModels',
  'listTensors',
  'startJob',
  'cancelJob',
  'jobStatus',
  'pauseJob',
  'resumeJob',
  'headWeights',
  'recipePresets',
  'checkRecipe',
  'recipeToYaml',
  'predictCompression',
  'suggestExportPath',
  'readReport',
  'listResults',
  'listMethods',
  'planGgufExport',
  'readImatrix',
] as const satisfies readonly Exclude<keyof WhittleApi, 'onJob'>[]

export type ApiCall = (typeof API_CALLS)[number]

/** The error shape that crosses the bridge: a message a person can read. */
export interface ApiError {
  message: string
  /** e.g. 'format', 'validation', 'not-found', 'internal' */
  code: string
}

export const JOB_EVENT = 'whittle:job'
