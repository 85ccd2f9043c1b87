// Knowledge distillation as a recipe step (Hinton et al. 2015): the student (the model as the recipe has
// made it so far) learns from the teacher's softened output distribution,
//   loss = α·T²·KL(teacher_T ‖ student_T) + (1 − α)·CE(next token),
// training the decoder-block Linears with AdamW while pruned entries stay exactly zero. α = 0 is plain
// fine-tuning on the next-token cross-entropy. The training engine is src-main/engine/train/.
//
// Defaults follow what users of TRL/PEFT expect: T 2, α 0.5, AdamW (0.9, 0.999, 1e-8, no decay), a
// constant lr of 1e-4 with no warm-up, shuffled windows from a seed, no clipping.
// The teacher is the model before the recipe's first step (read again from its file), or `teacher`.
// The training text is `text` (a file, or a folder of .txt files), or else the calibration windows.
// eval_every measures perplexity on eval_text during training (and after the last step); with keep_best
// (on by default then) the weights at the best eval perplexity are the step's result, as TRL's
// load_best_model_at_end. teacher_topk caches the teacher's top-k logits per window so that repeated
// epochs skip the teacher's forward pass: the KL is then taken over the top-k with the tail mass lumped
// into one bin (train/teacher-topk.ts); a k of at least the vocabulary is exact. qat: ternary trains a
// BitNet b1.58 student (ternary weights, int8 activations, straight-through gradients; bitnet-qat.ts).

import { WhittleError } from '../../errors'
import { loadModel } from '../../model/loaded-model'
import { ADAMW_DEFAULTS, SCHEDULES, type AdamWSettings, type ScheduleName } from '../../train/adamw'
import { LlamaTrainer } from '../../train/llama-trainer'
import { loraScale, mergeAdapter, type LoraSettings } from '../../train/lora'
import { detectNf4BlockSize } from '../../train/qlora'
import { readTensorF32 } from '../../formats/read'
import { train, type StepReport, type WindowOrder } from '../../train/train-loop'
import {
  choiceParam,
  intParam,
  numberParam,
  objectParam,
  stringParam,
  type ParamSpec,
} from '../../../contract/method-params'
import type { CompressionMethod, StructureContext, StructureResult } from './method'
import {
  readTrainingEvalSettings,
  TRAINING_EVAL_PARAMS,
  TrainingEvals,
  type TrainingEvalSettings,
} from './training-evals'
import { ParamReader } from './params'
import { TRAINING_WINDOW_PARAMS, trainingIds } from './training-text'
import { LORA_ADAPTER_PARAMS, mergeTrainedAdapters, NF4_CODEC, parseLoraAdapter } from './lora'
import { QAT_PARAMS, TernaryQat, type QatMode } from './bitnet-qat'

export interface DistillParams {
  steps: number
  batchSize: number
  microBatch: number
  seqlen: number
  order: WindowOrder
  seed: number
  lr: number
  schedule: ScheduleName
  warmupSteps: number
  optimizer: AdamWSettings
  maxGradNorm: number
  temperature: number
  alpha: number
  trainable: 'linears' | 'lora'
  /** The adapters' settings with trainable: lora (LoRA on the frozen student, merged at the end). */
  lora: LoraSettings
  /** Training text: a file or a folder of .txt files; absent = the calibration windows. */
  text: string | undefined
  /** Teacher model path; absent = the model the recipe started from. */
  teacher: string | undefined
  /** eval_every, eval_text, eval_windows, keep_best (training-evals.ts). */
  evals: TrainingEvalSettings
  /** Cache this many of the teacher's top logits per window (0 = no cache). */
  teacherTopK: number
  /** Quantization-aware training of the student (bitnet-qat.ts). */
  qat: QatMode
}

const OPTIMIZER_EXAMPLE = '{name: adamw, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0}'

export const DISTILL_PARAMS: readonly ParamSpec[] = [
  ...TRAINING_WINDOW_PARAMS,
  intParam('seed', 0, 0, 2 ** 31 - 1, 'Seed of the window shuffle'),
  numberParam('lr', 1e-4, 1e-12, 10, 'Peak learning rate'),
  choiceParam('schedule', 'constant', SCHEDULES, 'Learning-rate schedule after the warm-up'),
  intParam('warmup_steps', 0, 0, 10_000_000, 'Steps of linear learning-rate warm-up'),
  objectParam(
    'optimizer',
    [
      choiceParam('name', 'adamw', ['adamw'], 'The optimizer'),
      numberParam('beta1', ADAMW_DEFAULTS.beta1, 0, 0.999999, 'First-moment decay'),
      numberParam('beta2', ADAMW_DEFAULTS.beta2, 0, 0.99999999, 'Second-moment decay'),
      numberParam('eps', ADAMW_DEFAULTS.eps, 1e-30, 1, 'Denominator guard'),
      numberParam('weight_decay', ADAMW_DEFAULTS.weightDecay, 0, 10, 'Decoupled weight decay'),
    ],
    `AdamW settings, e.g. ${OPTIMIZER_EXAMPLE}`,
  ),
  numberParam('max_grad_norm', 0, 0, 1e12, 'Clip the global gradient norm to this (0 = no clipping)'),
  numberParam('temperature', 2, 1e-3, 1000, 'Softmax temperature T of the distillation loss'),
  numberParam('alpha', 0.5, 0, 1, 'Weight of the KL term (1 − alpha weighs the cross-entropy)', 0.05),
  choiceParam('trainable', 'linears', ['linears', 'lora'], 'What trains: the decoder Linears, or LoRA adapters'),
  stringParam('text', 'Training text: a file or a folder of .txt files (default: the calibration windows)'),
  stringParam('teacher', 'Teacher model path (default: the model before the recipe)'),
  ...TRAINING_EVAL_PARAMS,
  intParam(
    'teacher_topk',
    0,
    0,
    1 << 24,
    "Cache the teacher's top-k logits per window so repeated epochs skip its forward pass (0 = off; below the vocabulary the KL lumps the tail mass)",
  ),
  objectParam(
    'lora',
    LORA_ADAPTER_PARAMS,
    'LoRA adapter settings, with trainable: lora, e.g. {r: 8, alpha: 16, dropout: 0}',
  ),
  ...QAT_PARAMS,
]

function parseOptimizer(r: ParamReader): AdamWSettings {
  const o = r.nested('optimizer', OPTIMIZER_EXAMPLE)
  if (!o) return { ...ADAMW_DEFAULTS }
  o.oneOf('name')
  const settings: AdamWSettings = {
    beta1: o.num('beta1'),
    beta2: o.num('beta2'),
    eps: o.num('eps'),
    weightDecay: o.num('weight_decay'),
  }
  o.done()
  return settings
}

function parseLora(r: ParamReader, where: string): LoraSettings {
  const l = r.nested('lora', '{r: 8, alpha: 16, dropout: 0}')
  const settings = parseLoraAdapter(l ?? new ParamReader({}, `${where} lora`, LORA_ADAPTER_PARAMS))
  l?.done()
  return settings
}

export function parseDistillParams(raw: Record<string, unknown>, where: string): DistillParams {
  const r = new ParamReader(raw, where, DISTILL_PARAMS)
  const batchSize = r.int('batch_size')
  const microBatch = r.int('micro_batch', batchSize)
  if (microBatch > batchSize) r.fail('micro_batch', `must be an integer in [1, ${batchSize}] (got ${microBatch})`)
  const p: DistillParams = {
    steps: r.int('steps'),
    batchSize,
    microBatch,
    seqlen: r.int('seqlen'),
    order: r.oneOf<WindowOrder>('order'),
    seed: r.int('seed'),
    lr: r.num('lr'),
    schedule: r.oneOf<ScheduleName>('schedule'),
    warmupSteps: r.int('warmup_steps'),
    optimizer: parseOptimizer(r),
    maxGradNorm: r.num('max_grad_norm'),
    temperature: r.num('temperature'),
    alpha: r.num('alpha'),
    trainable: r.oneOf<DistillParams['trainable']>('trainable'),
    lora: parseLora(r, where),
    text: r.optString('text'),
    teacher: r.optString('teacher'),
    evals: readTrainingEvalSettings(r),
    teacherTopK: r.int('teacher_topk'),
    qat: r.oneOf<QatMode>('qat'),
  }
  r.done()
  if (p.qat !== 'none' && p.trainable === 'lora') r.fail('qat', 'trains the Linears themselves, not LoRA adapters')
  if (p.teacherTopK > 0 && p.alpha === 0) r.fail('teacher_topk', 'applies to distillation with a teacher (alpha > 0)')
  if (r.given('lora') && p.trainable !== 'lora') r.fail('lora', 'applies with trainable: lora only')
  return p
}

/** The calibration windows as one stream of ids (windows of the training seqlen are then exactly them). */
function idsFromWindows(windows: Int32Array[]): Int32Array {
  const out = new Int32Array(windows.reduce((s, w) => s + w.length, 0))
  let at = 0
  for (const w of windows) {
    out.set(w, at)
    at += w.length
  }
  return out
}

/**
 * Full-parameter training refuses students whose Linears are quantized (stored as codes, or holding an
 * nf4 step's values): a gradient step would take them off their grid. LoRA trains on top of them.
 */
async function refuseQuantized(ctx: StructureContext<DistillParams>): Promise<void> {
  if (ctx.params.trainable === 'lora') return
  // What an earlier quantize step left quantized, even through a prune or a structural step since.
  for (const [name, by] of ctx.quantized ?? []) {
    if (!ctx.view.tensors.some((t) => t.name === name)) continue
    throw new WhittleError(
      'unsupported',
      ctx.view.files.path,
      `distill: ${name} was quantized by an earlier ${by} step; full-parameter training of a quantized student is refused (use trainable: lora, or the lora step, to train adapters on the frozen quantized weights)`,
    )
  }
  const first = ctx.view.tensors.find(
    (t) => t.layer !== null && ['q', 'k', 'v', 'o', 'gate', 'up', 'down'].includes(t.role),
  )
  if (first && detectNf4BlockSize(NF4_CODEC, await readTensorF32(ctx.view.entry(first.name))) !== null) {
    throw new WhittleError(
      'unsupported',
      ctx.view.files.path,
      `distill: ${first.name} holds NF4 values; full-parameter training of a quantized student is refused (use trainable: lora, or the lora step, to train adapters on the frozen NF4 base)`,
    )
  }
  for (const t of ctx.view.tensors) {
    if (t.layer === null || !['q', 'k', 'v', 'o', 'gate', 'up', 'down'].includes(t.role)) continue
    const dtype = ctx.view.entry(t.name).dtype
    if (!['F32', 'F16', 'BF16'].includes(dtype)) {
      throw new WhittleError(
        'unsupported',
        ctx.view.files.path,
        `distill: ${t.name} is stored as ${dtype}; full-parameter training of a quantized student is refused (recover it with LoRA on the frozen quantized weights, or with quantization-aware training)`,
      )
    }
  }
}

async function distillRun(ctx: StructureContext<DistillParams>): Promise<StructureResult> {
  const p = ctx.params
  await refuseQuantized(ctx)
  const view = ctx.view
  let ids: Int32Array
  if (p.text) ids = await trainingIds(view, p.text)
  else if (ctx.windows?.length) ids = idsFromWindows(ctx.windows)
  else
    throw new WhittleError('validation', null, 'distill needs training text: give params.text, or calibration windows')
  if (ids.length < p.seqlen)
    throw new WhittleError(
      'validation',
      p.text ?? null,
      `the training text has ${ids.length} tokens, fewer than one window of ${p.seqlen}`,
    )
  const evals = await TrainingEvals.create(view, p.evals, {
    pool: ctx.pool,
    signal: ctx.signal,
    seqlen: p.seqlen,
    totalSteps: p.steps,
    onProgress: ctx.onProgress,
  })
  const teacher = p.alpha > 0 ? await loadModel(p.teacher ?? view.files.path) : null
  const lora = p.trainable === 'lora'
  const trainer = await LlamaTrainer.create(
    ctx.pool,
    view,
    teacher,
    p.seqlen,
    { temperature: p.temperature, alpha: p.alpha },
    lora ? { lora: p.lora, isTarget: (name) => !ctx.targets || ctx.targets.has(name) } : null,
  )
  trainer.cacheTeacherTopK(p.teacherTopK)
  const before = lora ? new Map<string, Float32Array>() : new Map([...trainer.weights()])
  const qat = p.qat === 'ternary' ? new TernaryQat(ctx.pool) : null
  /** The student's trained weights as they stand (with LoRA: the adapters merged into the frozen base). */
  const current = (): Map<string, Float32Array> => {
    const set = trainer.adapters()
    if (!set) return trainer.weights()
    return new Map(
      set.adapters.map((a) => [a.name, mergeAdapter(trainer.baseWeight(a.layer, a.role), a, loraScale(set))]),
    )
  }
  let merged: Awaited<ReturnType<typeof mergeTrainedAdapters>> | null = null
  let teacherCache = ''
  let result
  try {
    qat?.attach(trainer)
    result = await train(
      trainer,
      ids,
      {
        steps: p.steps,
        batchSize: p.batchSize,
        microBatch: p.microBatch,
        order: p.order,
        seed: p.seed,
        lr: p.lr,
        schedule: p.schedule,
        warmupSteps: p.warmupSteps,
        optimizer: p.optimizer,
        maxGradNorm: p.maxGradNorm,
      },
      {
        signal: ctx.signal,
        onStep: async (r: StepReport) => {
          qat?.requantize()
          const eta = ((p.steps - r.step - 1) * p.batchSize * p.seqlen) / Math.max(r.tokensPerSecond, 1e-9)
          ctx.onProgress?.(
            (r.step + 1) / p.steps,
            `step ${r.step + 1}/${p.steps} · loss ${r.loss.toFixed(4)} (CE ${r.ce.toFixed(4)}, KL ${r.kl.toFixed(4)}) · ${r.tokensPerSecond.toFixed(0)} tok/s · ETA ${eta.toFixed(0)} s`,
          )
          await evals.afterStep(
            r.step,
            qat ? qat.evalView(view) : view,
            qat ? () => qat.quantizedWeights() : current,
            trainer,
          )
        },
      },
    )
    evals.restoreBest(trainer)
    if (p.teacherTopK > 0)
      teacherCache = `; teacher top-${p.teacherTopK} cache: ${trainer.teacherPasses} teacher passes, ${(trainer.teacherCacheBytes / 2 ** 20).toFixed(1)} MiB`
    if (lora) merged = await mergeTrainedAdapters(trainer, view)
    else if (qat) qat.finish(view)
    else for (const [name, w] of trainer.weights()) view.replace(name, w)
  } finally {
    qat?.free()
    trainer.free()
  }
  const kind =
    (p.alpha > 0 ? `KD T ${p.temperature} α ${p.alpha}` : 'CE fine-tuning') +
    (qat ? ' with ternary QAT (BitNet b1.58)' : '') +
    (lora ? ` of LoRA r ${p.lora.r} α ${p.lora.alpha} adapters (merged)` : '')
  const first = result.first!,
    last = result.last!
  const note =
    `${kind}, ${p.steps} steps: loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}, ${result.tokens} tokens, ` +
    `${result.seconds.toFixed(1)} s (${(result.tokens / result.seconds).toFixed(0)} tok/s)` +
    evals.describe() +
    teacherCache +
    (merged?.notes.length ? `; ${merged.notes.join('; ')}` : '')
  return {
    view,
    changed: merged
      ? merged.changed
      : [...before].map(([name, values]) => ({
          name,
          before: values,
          format: qat ? qat.format : 'distilled',
          ...(qat ? { bitsPerWeight: qat.bitsPerWeight(values.length) } : {}),
        })),
    training: {
      steps: p.steps,
      firstLoss: first.loss,
      lastLoss: last.loss,
      tokens: result.tokens,
      seconds: result.seconds,
      losses: result.steps.map((s) => s.loss),
      ...evals.summary(),
    },
    ...(merged ? { adapters: merged.adapters } : {}),
    note,
  }
}

export const distill: CompressionMethod<DistillParams> = {
  name: 'distill',
  kind: 'recover',
  summary: 'Recovery by knowledge distillation from the model before the recipe (AdamW on the decoder Linears)',
  params: DISTILL_PARAMS,
  // Calibration windows are the default training text.
  needs: { calibration: true, hessian: false },
  parseParams: parseDistillParams,
  predict: () => ({ bitsPerWeight: 32, format: 'distilled' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'distill trains the whole model, not single Linears')
  },
  recover: distillRun,
}
