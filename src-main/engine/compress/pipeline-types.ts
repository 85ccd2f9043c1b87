// What a recipe run takes and gives back, declared apart from the pipeline so the step runners
// (layer-step.ts, structure/structure-step.ts) and the reports can name these types without importing
// the pipeline that calls them.

import type { ModelView } from '../model/model-view'
import type { LoraAdapterSet } from '../train/lora'
import type { LinearOutcome, TrainingSummary } from './methods/method'
import type { MaskThumbnail, NmVerdict } from './prune/sparsity'
import type { UniformGridRecord } from './quant/record'
import type { GgufKeptBytes } from './gguf-types/kept-bytes'

/** One tensor changed by one step, as the report shows it. */
export interface TensorOutcome extends Omit<LinearOutcome, 'record' | 'nm' | 'inputScale' | 'ggufBytes'> {
  step: number
  method: string
  layer: number
  role: string
  shape: [number, number]
  /** ‖W − Ŵ‖_F / ‖W‖_F */
  relWeightError: number
  /** ‖X(W − Ŵ)ᵀ‖_F / ‖XWᵀ‖_F on a sample of calibration inputs; null without calibration. */
  relOutputError: number | null
  /** Fraction of zero weights after the step. */
  sparsity: number
  /** The validator's verdict when the method imposed an N:M pattern. */
  nm?: NmVerdict
  /** Pruning methods: the mask's density, down-sampled. */
  mask?: MaskThumbnail
}

export interface PipelineOptions {
  /** Calibration windows; required when a step's method needs calibration. */
  windows?: Int32Array[]
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
  /** Called after each step with the view as it stands (e.g. to measure perplexity per step). */
  afterStep?: (step: number, view: ModelView) => Promise<void>
  /** Set by runRecipe for each step: the block Linears earlier quantize steps left quantized (quantized-tensors.ts). */
  quantized?: ReadonlyMap<string, string>
}

/** A recovery step's training record, with the step it belongs to. */
export interface StepTraining extends TrainingSummary {
  step: number
  method: string
}

export interface PipelineResult {
  view: ModelView
  tensors: TensorOutcome[]
  /** One entry per recovery (training) step. */
  training: StepTraining[]
  /** The adapters of the last step that trained LoRA adapters (merged or not), for adapter exports. */
  adapters: LoraAdapterSet | null
  /**
   * The quantization grids behind each tensor whose last step was a uniform quantizer (RTN, GPTQ, AWQ):
   * packed exports derive integer codes from them. A later step that changes a tensor drops its record.
   */
  records: Map<string, UniformGridRecord>
  /**
   * The GGUF bytes of each tensor whose last step was `gguf`, for a GGUF export of the same type to write
   * as they are. Entries a later step made stale are not removed here; the export checks each one.
   */
  ggufBytes: GgufKeptBytes
  seconds: number
}
