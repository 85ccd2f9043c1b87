// What an architecture adapter makes of a checkpoint: the family, its geometry, and the role and decoder
// layer of every tensor. Compression and inspection work from roles, never from a format's tensor names.

import type { TensorRole } from '../../contract/api'

export type Family = 'llama' | 'gpt2' | 'opt' | 'gpt-neox' | 'unknown'

export interface TensorPlace {
  role: TensorRole
  /** Decoder layer index, or null outside the blocks. */
  layer: number | null
  /** true for GPT-2 Conv1D weights stored [in, out] */
  transposed: boolean
  /**
   * true for bias vectors (qwen2 q/k/v biases, GPT-2 and OPT Linear and LayerNorm biases). A bias shares its
   * weight's role, so tensorName() skips biases to stay unambiguous.
   */
  bias?: boolean
}

export interface ModelArchitecture {
  family: Family
  /** e.g. 'LlamaForCausalLM', 'llama' (GGUF general.architecture); '' when nothing declares it. */
  declared: string
  layers: number
  hiddenSize: number
  heads: number
  kvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
  maxPositions: number | null
  normEps: number | null
  ropeTheta: number | null
  tiedEmbeddings: boolean
  /** 'hf' rotate_half layout, 'gguf' llama.cpp interleaved (q/k rows permuted), 'none' for learned positions */
  ropeLayout: 'hf' | 'gguf' | 'none'
  /** Every tensor name of the model -> role and layer. */
  places: Record<string, TensorPlace>
  warnings: string[]
}
