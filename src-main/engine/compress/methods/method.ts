// The one interface every compression method implements. A method works on one decoder layer's
// Linears that read the same input (q/k/v, o, gate/up, down): that is the unit at which smoothing
// methods must act (they rescale a shared input), and quantizers simply loop over it.

import type { InputGroup, LearnedGrid, TensorRole } from '../../../contract/api'
import type { MethodKind, ParamSpec } from '../../../contract/method-params'
import type { InputStats } from '../../calibration/capture'
import type { UniformGridRecord } from '../quant/record'
import type { GgufKeptTensor } from '../gguf-types/kept-bytes'
import type { RuntimeQuant } from '../../model/loaded-model'
import type { ModelView } from '../../model/model-view'
import type { LoraAdapterSet } from '../../train/lora'
import type { WorkerPool } from '../../pool/worker-pool'

export interface LinearToCompress<P = unknown> {
  name: string
  role: TensorRole
  layer: number
  /** [rows = out, cols = in] */
  rows: number
  cols: number
  /** f32, replaced in place by the compressed (dequantized or pruned) weights. */
  weight: Float32Array
  /** The step's params with this tensor's recipe overrides applied, parsed by the method. */
  params: P
}

export interface GroupContext<P = unknown> {
  layer: number
  group: InputGroup
  linears: LinearToCompress<P>[]
  /** Calibration statistics of the group's input (Hessian included when the method asked for it). */
  input: InputStats | null
  pool: WorkerPool
}

/**
 * A whole decoder layer, for methods that must act across groups before quantizing any of them
 * (AWQ and SmoothQuant fold per-channel scales into the op that produces a Linear's input: the
 * attention/FFN norm, or up_proj for down_proj). Reads and writes go through the model view, so a
 * folded norm is what the next forward pass sees.
 */
export interface LayerContext<P = unknown> {
  layer: number
  groups: GroupContext<P>[]
  /** f32 copy of a tensor of this layer by role (norms, or Linears not targeted), or null if absent. */
  read(role: TensorRole): Promise<Float32Array | null>
  /** Replaces a tensor of this layer by role with new values of the same shape. */
  write(role: TensorRole, values: Float32Array): void
  pool: WorkerPool
}

export interface LinearOutcome {
  name: string
  /** Storage bits per weight of the result (codes + scales/zeros, or 16 for kept-dense weights). */
  bitsPerWeight: number
  /** e.g. "w4 g32 asym", "Q4_K", "50% unstructured". */
  format: string
  /** A note for the report, e.g. a type fallback. */
  note?: string
  /**
   * When the method folded a per-input-channel scale s into the producing op (x → x / s, W → W · s),
   * the s it used, so output errors are measured on the inputs the new weights will really see.
   */
  inputScale?: Float32Array
  /** Uniform quantizers (RTN, GPTQ): the grids behind the weight, so packed exports can store integers. */
  record?: UniformGridRecord
  /** Pruners: the N:M pattern imposed, which the pipeline checks with the validator. */
  nm?: { n: number; m: number }
  /** Parameters the result stores when they differ from rows × cols (low-rank factors). */
  storedParams?: number
  /** Non-uniform and vector quantizers: the learned grid, passed on to the report and the UI as is. */
  grid?: LearnedGrid
  /** The gguf method: the GGUF bytes behind the weight, kept for a GGUF export of the same type. */
  ggufBytes?: GgufKeptTensor
}

/** One Linear a step targets, before the step runs (for methods that look at all targets first). */
export interface StepTarget<P = unknown> {
  name: string
  rows: number
  cols: number
  /** The tensor's parsed params; prepareStep may set fields on them (e.g. a global threshold). */
  params: P
  /** The weight as it stands before this step (a fresh f32 copy each call). */
  read(): Promise<Float32Array>
}

/** The model as a step finds it, for prepareStep: whole-model statistics before any layer changes. */
export interface StepContext {
  view: ModelView
  pool: WorkerPool
  /** Calibration windows, when the run has them. */
  windows?: Int32Array[]
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

/** A structural step's view of the whole model (drop layers, remove heads). */
export interface StructureContext<P = unknown> {
  view: ModelView
  params: P
  pool: WorkerPool
  /** Calibration windows, when the step needs them (importance-ranked selections). */
  windows?: Int32Array[]
  /** Names of the block Linears the step's targets select (all of them by default), for whole-model steps that act on chosen Linears (lora). */
  targets?: ReadonlySet<string>
  /** Block Linears an earlier quantize step left quantized, with its method (compress/quantized-tensors.ts). */
  quantized?: ReadonlyMap<string, string>
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

/** A training step's record for the report (issue #12: per step, the first and last loss and the tokens seen). */
export interface TrainingSummary {
  steps: number
  firstLoss: number
  lastLoss: number
  tokens: number
  seconds: number
  /** The loss of every optimizer step (the loss curve). */
  losses: number[]
  /** Eval perplexity during training (eval_every): after how many optimizer steps, and the perplexity. */
  evals?: { step: number; ppl: number }[]
  /** With keep_best: the optimizer step (1-based) whose weights are the result (the best eval perplexity). */
  bestStep?: number
}

export interface StructureResult {
  /** The model after the step: a new, smaller view, or the same view with tensors zeroed in place. */
  view: ModelView
  /** Old → new tensor names when the step renamed or removed tensors (absent names were removed). */
  renames?: Map<string, string>
  /** Tensors changed in place (masked heads), with their values before, for the per-tensor report. */
  changed: {
    name: string
    before: Float32Array
    format: string
    /**
     * Set for a quantized result (ternary QAT: 2-bit codes and a scale): its storage bits per weight; its
     * zeros are codes, not pruning.
     */
    bitsPerWeight?: number
  }[]
  /** What was removed, for the report, e.g. "dropped layers 3, 4". */
  note: string
  /** Recovery steps: how training went. */
  training?: TrainingSummary
  /** LoRA steps: the trained adapters (merged into the view or not), for adapter exports. */
  adapters?: LoraAdapterSet
}

/**
 * A recovery step's view of the whole model as the earlier steps left it: the training engine
 * (engine/train) fits its weights on text (distillation, fine-tuning). The same as a structural step's.
 */
export type RecoverContext<P = unknown> = StructureContext<P>

/** The trained model (the same shape), and the tensors training changed, with their values before. */
export type RecoverResult = Omit<StructureResult, 'renames'>

export interface CompressionMethod<P = unknown> {
  readonly name: string
  /**
   * Where the step runs in the pipeline: 'structure' methods change the model's shape or remove whole
   * heads (they implement restructure); 'recover' methods train the whole model (they implement recover);
   * the others compress one decoder layer at a time (compressGroup or compressLayer).
   */
  readonly kind: MethodKind
  /** One line for the catalogue (`--help-method`, the UI): what it does and what it needs. */
  readonly summary: string
  /** The parameters parseParams reads (its ParamReader validates from them): the method's one schema. */
  readonly params: readonly ParamSpec[]
  /**
   * sequential (default true): layer i's statistics come from inputs through already-compressed layers
   * (GPTQ, SparseGPT). false: all statistics come from the original model first (SmoothQuant's scales).
   */
  readonly needs: { calibration: boolean; hessian: boolean; sequential?: boolean }
  /**
   * Optional: whether a step with these raw params needs calibration windows although the method as a
   * whole does not (gguf with imatrix: calibration). See needsCalibration.
   */
  stepNeedsCalibration?(raw: Record<string, unknown>): boolean
  /** Set when the compressed model must also quantize activations at run time (W8A8). */
  readonly runtime?: RuntimeQuant
  /** Parses and checks the step's params; `where` names the step in errors. */
  parseParams(raw: Record<string, unknown>, where: string): P
  compressGroup(ctx: GroupContext<P>): Promise<LinearOutcome[]>
  /** Storage the result will take, before running (for the UI's size preview). */
  predict(params: P, rows: number, cols: number): { bitsPerWeight: number; format: string }
  /**
   * Optional: sees every target of the step before any is compressed (global magnitude's threshold;
   * SqueezeLLM's Fisher, from the whole model on the calibration windows).
   */
  prepareStep?(targets: StepTarget<P>[], step: StepContext): Promise<void>
  /** Structural methods: the whole step at once, on the whole model. */
  restructure?(ctx: StructureContext<P>): Promise<StructureResult>
  /** Recovery methods: train the whole model at once, on the training engine. */
  recover?(ctx: RecoverContext<P>): Promise<RecoverResult>
  /** Optional: handle the whole layer (default: compressGroup for each group in turn). */
  compressLayer?(ctx: LayerContext<P>): Promise<LinearOutcome[]>
}

/** Whether a step of `method` with raw params `raw` needs calibration windows. */
export function needsCalibration(
  method: Pick<CompressionMethod, 'needs' | 'stepNeedsCalibration'>,
  raw: Record<string, unknown>,
): boolean {
  return method.needs.calibration || (method.stepNeedsCalibration?.(raw) ?? false)
}
