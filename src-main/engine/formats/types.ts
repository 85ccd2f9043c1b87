// What every format reader produces: an index of tensors with byte locations, never the data itself.
// Readers only parse headers; data is read later by byte range (see io/ranged-file.ts).

/**
 * Element encodings the engine understands. Safetensors dtypes use their own names
 * (F32, F16, BF16, F8_E4M3, ...); GGUF block types use ggml's names (Q8_0, Q4_K, ...).
 */
export type DType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'F8_E4M3'
  | 'F8_E5M2'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL'
  | 'Q4_0'
  | 'Q4_1'
  | 'Q5_0'
  | 'Q5_1'
  | 'Q8_0'
  | 'Q8_1'
  | 'Q2_K'
  | 'Q3_K'
  | 'Q4_K'
  | 'Q5_K'
  | 'Q6_K'
  | 'Q8_K'
  | 'IQ4_NL'
  | 'IQ4_XS'
  | 'TQ1_0'
  | 'TQ2_0'

export interface TensorEntry {
  name: string
  dtype: DType
  /** PyTorch order (outermost first): a Linear weight is [out, in]. GGUF dims are reversed into this order. */
  shape: number[]
  /** Absolute path of the file holding the bytes. */
  file: string
  /** Absolute byte offset of the first element in `file`. */
  offset: number
  byteLength: number
  /**
   * Bytes held in memory instead of on disk (a compressed tensor not yet exported). When present,
   * reads come from here and `file`/`offset` only say where the tensor originally came from.
   */
  data?: Uint8Array
  /**
   * A tensor the checkpoint stores in other tensors (a GPTQ or compressed-tensors packed Linear): its F32
   * values are computed from them on read. `file`/`offset` then name where the packed data starts.
   */
  unpack?: () => Promise<Float32Array>
  /** How a packed Linear (`unpack` present) is stored: the checkpoint's own tensors and their quantization. */
  packed?: PackedLinearLayout
}

/**
 * A GPTQ or compressed-tensors Linear as the checkpoint stores it (bit layouts: numerics/gptq-pack.ts,
 * numerics/compressed-tensors-pack.ts). Read by inspect/packed-linear-storage.ts for the Storage panel.
 */
export interface PackedLinearLayout {
  scheme: 'gptq' | 'compressed-tensors'
  /** GPTQ's zero convention ('gptq' stores z − 1, 'gptq_v2' z); absent for compressed-tensors. */
  gptqFormat?: 'gptq' | 'gptq_v2'
  bits: number
  /** Inputs per group as the config declares it; -1 = one group per output row. */
  groupSize: number
  /** The config's desc_act (GPTQ) or actorder (compressed-tensors). */
  actOrder: boolean
  /** The config's sym (GPTQ) or symmetric (compressed-tensors). */
  symmetric: boolean
  rows: number
  cols: number
  /** The integer codes (qweight / weight_packed). */
  codes: TensorEntry
  scales: TensorEntry
  zeros?: TensorEntry
  gIdx?: TensorEntry
  /** compressed-tensors' weight_shape: the decoded [rows, cols]. */
  weightShape?: TensorEntry
}

export interface ModelFiles {
  /** 'safetensors' or 'gguf' */
  format: 'safetensors' | 'gguf'
  /** What the user opened (file or folder). */
  path: string
  /** Data files, in order. */
  files: string[]
  tensors: TensorEntry[]
  /** safetensors __metadata__, or GGUF KV metadata (arrays summarised only when large). */
  metadata: Record<string, unknown>
  /** HF config.json contents when present. */
  config: Record<string, unknown> | null
  generationConfig: Record<string, unknown> | null
  /** Absolute path of tokenizer.json when present. */
  tokenizerPath: string | null
  sizeOnDisk: number
  /** Non-fatal findings of the readers (e.g. unused gaps in a safetensors data buffer). */
  warnings?: string[]
}
