// The one typed contract between the renderer and the engine.
// Electron exposes it through preload/contextBridge, web mode through a WebSocket;
// the renderer codes against `WhittleApi` and never learns which one it has.
// Everything here must stay plain JSON-serialisable data (it crosses IPC and WebSocket).

export type ModelId = string
export type JobId = string

/** Roles an architecture adapter assigns to tensors. */
export type TensorRole =
  | 'q' | 'k' | 'v' | 'qkv' | 'o'
  | 'gate' | 'up' | 'down' | 'fc1' | 'fc2'
  | 'attn_norm' | 'ffn_norm' | 'final_norm'
  | 'embed' | 'pos_embed' | 'lm_head'
  | 'other'

export interface ModelSummary {
  id: ModelId
  path: string
  /** 'safetensors' | 'gguf' */
  format: string
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
}

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
  /** A single colour value for the overview: log2(absmax/std) scaled by outlier share. */
  outlierScore: number
}

export interface ScanResult {
  modelId: ModelId
  k: number
  cells: ScanCell[]
  seconds: number
  bytes: number
}

export type JobSpec =
  | { kind: 'tensor'; modelId: ModelId; name: string; bins?: number; k?: number }
  | { kind: 'scan'; modelId: ModelId; k?: number }

export type JobState = 'queued' | 'running' | 'done' | 'error' | 'cancelled'

export interface JobUpdate {
  id: JobId
  kind: JobSpec['kind']
  state: JobState
  /** 0..1 */
  progress: number
  message: string
  result?: TensorDetail | ScanResult
  error?: string
}

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
  /** A model named on the command line (`--model`), to open instead of the demo on start. */
  startupPath: string | null
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
  /** Subscribe to job updates; returns an unsubscribe function. */
  onJob(listener: (update: JobUpdate) => void): () => void
}

/** Names of the request/response calls (everything but the event subscription). */
export const API_CALLS = [
  'appInfo', 'pickModel', 'openModel', 'openDemo', 'recentModels',
  'listTensors', 'startJob', 'cancelJob',
] as const satisfies readonly Exclude<keyof WhittleApi, 'onJob'>[]

export type ApiCall = (typeof API_CALLS)[number]

/** The error shape that crosses the bridge: a message a person can read. */
export interface ApiError {
  message: string
  /** e.g. 'format', 'validation', 'not-found', 'internal' */
  code: string
}

export const JOB_EVENT = 'whittle:job'
