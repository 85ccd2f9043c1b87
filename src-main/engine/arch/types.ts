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

/** A SliceGPT-sliced Llama's residual widths, as config.json declares them (arch/sliced-llama.ts). */
export interface SlicedWidths {
  /** Residual width at the 2L + 1 points: before layer l's attention (2l), before its MLP (2l + 1), after the last layer (2L). */
  dims: number[]
  /** The slicing fraction the model was made with (what the export records; the dims are what count). */
  fraction: number
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
  /** The MLP width; with per-layer widths (intermediateSizes), their maximum. */
  intermediateSize: number
  /**
   * Per-layer MLP widths, present only when layers differ (structured pruning, e.g. Bonsai's non-uniform
   * mode, declared by config.json's `whittle_intermediate_sizes`). Read through layerIntermediateSize.
   */
  intermediateSizes?: readonly number[]
  vocabSize: number
  maxPositions: number | null
  normEps: number | null
  ropeTheta: number | null
  tiedEmbeddings: boolean
  /** 'hf' rotate_half layout, 'gguf' llama.cpp interleaved (q/k rows permuted), 'none' for learned positions */
  ropeLayout: 'hf' | 'gguf' | 'none'
  /** SliceGPT-sliced Llama models: the residual stream's width at each point (arch/sliced-llama.ts). */
  slicing?: SlicedWidths
  /** Every tensor name of the model -> role and layer. */
  places: Record<string, TensorPlace>
  warnings: string[]
}

/** The MLP width of decoder layer `layer` (per-layer widths where the model declares them). */
export function layerIntermediateSize(
  a: Pick<ModelArchitecture, 'intermediateSize' | 'intermediateSizes'>,
  layer: number,
): number {
  return a.intermediateSizes?.[layer] ?? a.intermediateSize
}
