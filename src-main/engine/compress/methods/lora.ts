// LoRA (Hu et al. 2021) and QLoRA (Dettmers et al. 2023) as a recipe step: adapters W + (alpha/r)·B·A on
// the step's target Linears (all decoder-block Linears by default), trained with the next-token
// cross-entropy on the training engine (engine/train) while the base stays frozen, then merged into the
// weights. B starts at 0 and A at PEFT's Kaiming-uniform default, from the seed (train/lora.ts).
//
// QLoRA: when an earlier nf4 step left the base in NF4 (detected exactly, block size included), or with
// base: nf4 (which quantizes a dense base on the way in, as QLoRA loads a model in 4 bits), the frozen
// base is held packed (4-bit codes and double-quantized block constants, train/qlora.ts) and dequantized
// one decoder block at a time during training. An F16/BF16 base is held as its halves the same way.
//
// Merging densifies a pruned base (B·A is dense) and takes an NF4 base off its grid; the step's note says
// so. merge: false leaves the weights as they were; either way the adapters go with the step's result to
// the adapter exports (PEFT, GGUF: export/peft-adapter.ts, export/gguf/lora-adapter.ts).
// Defaults follow PEFT/TRL users' habits: r 8, alpha 16, no dropout, lr 2e-4 constant, AdamW.

import {
  boolParam,
  choiceParam,
  intParam,
  numberParam,
  objectParam,
  stringParam,
} from '../../../contract/method-params'
import { WhittleError } from '../../errors'
import { readTensorF32 } from '../../formats/read'
import { ADAMW_DEFAULTS, SCHEDULES, type AdamWSettings, type ScheduleName } from '../../train/adamw'
import { LlamaTrainer } from '../../train/llama-trainer'
import { LLAMA_LINEARS } from '../../train/llama-weights'
import { loraScale, mergeAdapter, type LoraAdapterSet, type LoraSettings } from '../../train/lora'
import type { ModelView } from '../../model/model-view'
import { HalfLinears } from '../../train/frozen-linears'
import { detectNf4BlockSize, Nf4PackedLinears, recoverNf4, type Nf4Codec } from '../../train/qlora'
import { train, type StepReport, type TrainResult, type WindowOrder } from '../../train/train-loop'
import type { CompressionMethod, RecoverContext, RecoverResult } from './method'
import { decodeAbsmax, encodeAbsmax, NF4_LEVELS, nearestNf4, nf4Quantize } from './nf4'
import { ParamReader } from './params'
import { TRAINING_WINDOW_PARAMS, trainingIds } from './training-text'
import {
  readTrainingEvalSettings,
  TRAINING_EVAL_PARAMS,
  TrainingEvals,
  type TrainingEvalSettings,
} from './training-evals'

/** The NF4 data type as the training engine takes it (declared once, in nf4.ts). */
export const NF4_CODEC: Nf4Codec = {
  levels: NF4_LEVELS,
  nearest: nearestNf4,
  encodeAbsmax,
  decodeAbsmax,
  quantize: (W, blockSize) => {
    nf4Quantize(W, { blockSize, doubleQuant: false })
  },
}

export type LoraBase = 'auto' | 'dense' | 'nf4'

/** QLoRA's block size when base: nf4 quantizes a dense base (the nf4 method's default too). */
const DEFAULT_NF4_BLOCK = 64

export interface LoraStepParams {
  lora: LoraSettings
  /** eval_every, eval_text, eval_windows, keep_best (training-evals.ts). */
  evals: TrainingEvalSettings
  steps: number
  batchSize: number
  microBatch: number
  seqlen: number
  order: WindowOrder
  lr: number
  schedule: ScheduleName
  warmupSteps: number
  optimizer: AdamWSettings
  maxGradNorm: number
  base: LoraBase
  /** NF4 block size of the base; null = detected. */
  nf4BlockSize: number | null
  doubleQuant: boolean
  /** Merge the adapters into the weights (else the base stays as it was; the adapters go to adapter exports). */
  merge: boolean
  /** Training text: a file or a folder of .txt files; absent = the calibration windows. */
  text: string | undefined
}

const OPTIMIZER_FIELDS = [
  choiceParam('name', 'adamw', ['adamw'], 'Optimizer'),
  numberParam('beta1', ADAMW_DEFAULTS.beta1, 0, 0.999999, 'AdamW β1'),
  numberParam('beta2', ADAMW_DEFAULTS.beta2, 0, 0.99999999, 'AdamW β2'),
  numberParam('eps', ADAMW_DEFAULTS.eps, 1e-30, 1, 'AdamW ε'),
  numberParam('weight_decay', ADAMW_DEFAULTS.weightDecay, 0, 10, 'Decoupled weight decay'),
]

/** The adapter's own parameters (also distill's `lora: {r, alpha, dropout}` with trainable: lora). */
export const LORA_ADAPTER_PARAMS = [
  intParam('r', 8, 1, 4096, 'Rank of the adapters'),
  numberParam('alpha', 16, 1e-6, 1e6, 'Adapter scale numerator: the update is (alpha / r)·B·A'),
  numberParam('dropout', 0, 0, 0.99, 'Dropout on the adapter input during training', 0.05),
  intParam('seed', 0, 0, 2 ** 31 - 1, "Seed of A's initialisation, the dropout masks and the shuffled order"),
]

export const LORA_PARAMS = [
  ...LORA_ADAPTER_PARAMS,
  ...TRAINING_WINDOW_PARAMS,
  numberParam('lr', 2e-4, 1e-12, 10, 'Learning rate', 1e-4),
  choiceParam('schedule', 'constant', SCHEDULES, 'Learning-rate schedule'),
  intParam('warmup_steps', 0, 0, 10_000_000, 'Linear warm-up steps'),
  objectParam('optimizer', OPTIMIZER_FIELDS, 'AdamW settings'),
  numberParam('max_grad_norm', 0, 0, 1e12, 'Clip the global gradient norm (0 = no clipping)'),
  choiceParam(
    'base',
    'auto',
    ['auto', 'dense', 'nf4'],
    'Frozen base: auto packs an NF4 base (QLoRA) and keeps F16/BF16 as halves; nf4 also quantizes a dense base to NF4; dense holds f32',
  ),
  intParam('nf4_block_size', null, 2, 1 << 20, 'Block size of the NF4 base', 'detected'),
  boolParam('double_quant', true, 'QLoRA: store the NF4 block constants double-quantized'),
  boolParam(
    'merge',
    true,
    'Merge the adapters into the weights; false keeps the base as it was (export the adapters with --adapter-out)',
  ),
  stringParam('text', 'Training text: a file or a folder of .txt files (default: the calibration windows)'),
  ...TRAINING_EVAL_PARAMS,
]

export function parseLoraAdapter(r: ParamReader): LoraSettings {
  return { r: r.int('r'), alpha: r.num('alpha'), dropout: r.num('dropout'), seed: r.int('seed') }
}

export function parseLoraParams(raw: Record<string, unknown>, where: string): LoraStepParams {
  const r = new ParamReader(raw, where, LORA_PARAMS)
  const lora = parseLoraAdapter(r)
  const batchSize = r.int('batch_size')
  const microBatch = r.int('micro_batch', batchSize)
  if (microBatch > batchSize) r.fail('micro_batch', `must not exceed batch_size (${batchSize})`)
  const o = r.nested('optimizer', '{name: adamw, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0}')
  let optimizer: AdamWSettings = { ...ADAMW_DEFAULTS }
  if (o) {
    o.oneOf('name')
    optimizer = { beta1: o.num('beta1'), beta2: o.num('beta2'), eps: o.num('eps'), weightDecay: o.num('weight_decay') }
    o.done()
  }
  const p: LoraStepParams = {
    lora,
    batchSize,
    microBatch,
    steps: r.int('steps'),
    seqlen: r.int('seqlen'),
    order: r.oneOf<WindowOrder>('order'),
    lr: r.num('lr'),
    schedule: r.oneOf<ScheduleName>('schedule'),
    warmupSteps: r.int('warmup_steps'),
    optimizer,
    maxGradNorm: r.num('max_grad_norm'),
    base: r.oneOf<LoraBase>('base'),
    nf4BlockSize: r.optInt('nf4_block_size'),
    doubleQuant: r.bool('double_quant'),
    merge: r.bool('merge'),
    text: r.optString('text'),
    evals: readTrainingEvalSettings(r),
  }
  r.done()
  if (p.nf4BlockSize !== null && p.base === 'dense')
    r.fail('nf4_block_size', 'applies to an NF4 base only (base: nf4 or auto)')
  return p
}

/** How the frozen base is held during training. */
type BaseHolding =
  | { kind: 'f32' }
  | { kind: 'half'; dtype: 'F16' | 'BF16' }
  /** quantize: the base was dense and is quantized to NF4 for training (QLoRA loading in 4 bits). */
  | { kind: 'nf4'; blockSize: number; quantize: boolean }

/**
 * base: auto holds an NF4 base (detected exactly on the first block Linear) packed, an F16/BF16 one as
 * halves, anything else in f32; base: nf4 holds it packed, quantizing a dense base; base: dense never packs.
 */
async function baseHolding(ctx: RecoverContext<LoraStepParams>): Promise<BaseHolding> {
  const p = ctx.params,
    view = ctx.view
  const linears = view.tensors.filter((t) => t.layer !== null && (LLAMA_LINEARS as readonly string[]).includes(t.role))
  if (p.base !== 'dense' && linears.length > 0) {
    const first = await readTensorF32(view.entry(linears[0].name))
    const found =
      p.nf4BlockSize !== null
        ? recoverNf4(NF4_CODEC, first, p.nf4BlockSize)
          ? p.nf4BlockSize
          : null
        : detectNf4BlockSize(NF4_CODEC, first)
    if (found !== null) return { kind: 'nf4', blockSize: found, quantize: false }
    if (p.base === 'nf4') return { kind: 'nf4', blockSize: p.nf4BlockSize ?? DEFAULT_NF4_BLOCK, quantize: true }
  }
  const dtypes = new Set(linears.map((t) => view.entry(t.name).dtype))
  const only = dtypes.size === 1 ? [...dtypes][0] : null
  if (only === 'F16' || only === 'BF16') return { kind: 'half', dtype: only }
  return { kind: 'f32' }
}

function joinIds(windows: Int32Array[]): Int32Array {
  const out = new Int32Array(windows.reduce((s, w) => s + w.length, 0))
  let at = 0
  for (const w of windows) {
    out.set(w, at)
    at += w.length
  }
  return out
}

/** What the lora step returns beyond the recipe's result: the adapters and the training record. */
export interface LoraRun {
  result: RecoverResult
  adapters: LoraAdapterSet
  training: TrainResult
  /** Bytes of the packed frozen base in JS memory (0 when it is held in f32 in kernel memory). */
  packedBaseBytes: number
  /** How the frozen base was held: f32 in kernel memory, F16/BF16 halves, or NF4 (QLoRA). */
  heldAs: BaseHolding['kind']
  peakKernelBytes: number
}

/** Trains the adapters and merges them into ctx.view; returns the adapters too (for adapter exports). */
export async function runLora(ctx: RecoverContext<LoraStepParams>): Promise<LoraRun> {
  const p = ctx.params,
    view = ctx.view
  const targets = view.tensors.filter(
    (t) =>
      t.layer !== null &&
      (LLAMA_LINEARS as readonly string[]).includes(t.role) &&
      (!ctx.targets || ctx.targets.has(t.name)),
  )
  if (targets.length === 0)
    throw new WhittleError('validation', null, "lora: the step's targets select no decoder-block Linear")
  const targetNames = new Set(targets.map((t) => t.name))
  let ids: Int32Array
  if (p.text) ids = await trainingIds(view, p.text)
  else if (ctx.windows?.length) ids = joinIds(ctx.windows)
  else throw new WhittleError('validation', null, 'lora needs training text: give params.text, or calibration windows')
  if (ids.length < p.seqlen)
    throw new WhittleError(
      'validation',
      p.text ?? null,
      `the training text has ${ids.length} tokens, fewer than one window of ${p.seqlen}`,
    )

  const holding = await baseHolding(ctx)
  const nf4 =
    holding.kind === 'nf4'
      ? new Nf4PackedLinears(ctx.pool, NF4_CODEC, holding.blockSize, p.doubleQuant, view.files.path, holding.quantize)
      : null
  const packed = nf4 ?? (holding.kind === 'half' ? new HalfLinears(ctx.pool, holding.dtype) : null)
  const trainer = await LlamaTrainer.create(
    ctx.pool,
    view,
    null,
    p.seqlen,
    { temperature: 1, alpha: 0 },
    {
      lora: p.lora,
      packed: packed ?? undefined,
      isTarget: (name) => targetNames.has(name),
    },
  )
  const evals = await TrainingEvals.create(view, p.evals, {
    pool: ctx.pool,
    signal: ctx.signal,
    seqlen: p.seqlen,
    totalSteps: p.steps,
    onProgress: ctx.onProgress,
  })
  /** The adapted Linears as they stand: the adapters merged into the frozen base. */
  const current = (): Map<string, Float32Array> => {
    const set = trainer.adapters()!
    return new Map(
      set.adapters.map((a) => [a.name, mergeAdapter(trainer.baseWeight(a.layer, a.role), a, loraScale(set))]),
    )
  }
  let training: TrainResult
  let merge: MergeResult
  try {
    training = await train(
      trainer,
      ids,
      {
        steps: p.steps,
        batchSize: p.batchSize,
        microBatch: p.microBatch,
        order: p.order,
        seed: p.lora.seed,
        lr: p.lr,
        schedule: p.schedule,
        warmupSteps: p.warmupSteps,
        optimizer: p.optimizer,
        maxGradNorm: p.maxGradNorm,
      },
      {
        signal: ctx.signal,
        onStep: async (r: StepReport) => {
          ctx.onProgress?.((r.step + 1) / p.steps, trainingProgressLine(r, p.steps, p.batchSize * p.seqlen))
          await evals.afterStep(r.step, view, current, trainer)
        },
      },
    )
    evals.restoreBest(trainer)
    merge = p.merge
      ? await mergeTrainedAdapters(trainer, view)
      : { adapters: trainer.adapters()!, changed: [], notes: [] }
  } finally {
    trainer.free()
  }
  const kind = holding.kind === 'nf4' ? `QLoRA (NF4 b${holding.blockSize}${p.doubleQuant ? ' dq' : ''} base)` : 'LoRA'
  const first = training.first!,
    last = training.last!
  const notes = [
    `${kind} r ${p.lora.r} α ${p.lora.alpha} on ${merge.adapters.adapters.length} Linears, ${p.steps} steps: CE ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}, ` +
      `${training.tokens} tokens, ${training.seconds.toFixed(1)} s (${(training.tokens / Math.max(training.seconds, 1e-9)).toFixed(0)} tok/s); ` +
      (p.merge ? 'adapters merged' : 'adapters kept separate (the weights are unchanged)') +
      evals.describe(),
  ]
  notes.push(...merge.notes)
  if (nf4 && p.merge) {
    if (holding.kind === 'nf4' && holding.quantize)
      notes.push(
        `the dense base was quantized to NF4 b${holding.blockSize} for training, and the adapters were merged into that NF4 base`,
      )
    notes.push(
      'merging took the NF4 base off its grid: the merged weights are dense (re-quantize with a later nf4 step, or export the adapters alone)',
    )
    if (nf4.constantChange > 0)
      notes.push(
        `holding the base with double-quantized block constants moved them by ${(100 * nf4.constantChange).toFixed(3)}% (relative RMS)`,
      )
  }
  return {
    result: {
      view,
      changed: merge.changed,
      note: notes.join('; '),
      training: {
        steps: p.steps,
        firstLoss: first.loss,
        lastLoss: last.loss,
        tokens: training.tokens,
        seconds: training.seconds,
        losses: training.steps.map((s) => s.loss),
        ...evals.summary(),
      },
      adapters: merge.adapters,
    },
    adapters: merge.adapters,
    training,
    packedBaseBytes: packed?.packedBytes ?? 0,
    heldAs: holding.kind,
    peakKernelBytes: training.peakKernelBytes,
  }
}

export interface MergeResult {
  adapters: LoraAdapterSet
  changed: { name: string; before: Float32Array; format: string }[]
  /** What merging did to the base, for the step's note (densified a pruned base, left a stored quantization). */
  notes: string[]
}

/** Merges a LoRA trainer's adapters into the view (W + (alpha/r)·B·A over the base training saw). */
export async function mergeTrainedAdapters(trainer: LlamaTrainer, view: ModelView): Promise<MergeResult> {
  const adapters = trainer.adapters()
  if (!adapters) throw new Error('mergeTrainedAdapters: the trainer trains no adapters')
  const scale = loraScale(adapters)
  const changed: MergeResult['changed'] = []
  const stored = new Set<string>()
  let zerosBefore = 0,
    zerosAfter = 0,
    total = 0
  for (const a of adapters.adapters) {
    const entry = view.entry(a.name)
    if (!['F32', 'F16', 'BF16'].includes(entry.dtype)) stored.add(entry.dtype)
    const before = await readTensorF32(entry)
    const after = mergeAdapter(trainer.baseWeight(a.layer, a.role), a, scale)
    for (const v of before) if (v === 0) zerosBefore++
    for (const v of after) if (v === 0) zerosAfter++
    total += after.length
    view.replace(a.name, after)
    changed.push({ name: a.name, before, format: `lora r${adapters.r} merged` })
  }
  const notes: string[] = []
  if (zerosBefore > 0.01 * total && zerosAfter < zerosBefore) {
    notes.push(
      `merging densified the pruned base: zeros ${((100 * zerosBefore) / total).toFixed(1)}% → ${((100 * zerosAfter) / total).toFixed(1)}%`,
    )
  }
  if (stored.size > 0)
    notes.push(
      `merging replaced the base's stored ${[...stored].join('/')} weights with dense ones (re-quantize with a later step, or export the adapters alone)`,
    )
  return { adapters, changed, notes }
}

/** "step 3/200 · loss 2.1234 · 5400 tok/s · ETA 12 s": the training progress line (stderr and the UI). */
export function trainingProgressLine(r: StepReport, steps: number, tokensPerStep: number): string {
  const eta = ((steps - r.step - 1) * tokensPerStep) / Math.max(r.tokensPerSecond, 1e-9)
  return `step ${r.step + 1}/${steps} · loss ${r.loss.toFixed(4)} · ${r.tokensPerSecond.toFixed(0)} tok/s · ETA ${eta.toFixed(0)} s`
}

export const lora: CompressionMethod<LoraStepParams> = {
  name: 'lora',
  kind: 'recover',
  summary:
    'LoRA / QLoRA: low-rank adapters trained on the next-token loss over the frozen (or NF4-packed) base, then merged',
  params: LORA_PARAMS,
  // Calibration windows are the default training text.
  needs: { calibration: true, hessian: false },
  parseParams: parseLoraParams,
  predict: () => ({ bitsPerWeight: 32, format: 'lora merged' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'lora trains the whole model, not single Linears')
  },
  async recover(ctx) {
    return (await runLora(ctx)).result
  },
}
