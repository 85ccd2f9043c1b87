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

import { readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { perplexity } from '../../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { withReplacements } from '../../model/model-view'
import { ADAMW_DEFAULTS, SCHEDULES, type AdamWSettings, type ScheduleName } from '../../train/adamw'
import { LlamaTrainer } from '../../train/llama-trainer'
import { train, type StepReport, type WindowOrder } from '../../train/train-loop'
import type { CompressionMethod, StructureContext, StructureResult } from './method'
import { ParamReader } from './params'

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
  /** Training text: a file or a folder of .txt files; absent = the calibration windows. */
  text: string | undefined
  /** Teacher model path; absent = the model the recipe started from. */
  teacher: string | undefined
  /** Perplexity on evalText every this many steps (0 = never). */
  evalEvery: number
  evalText: string | undefined
  /** Evaluate on the first this many windows of evalText only (0 = all). */
  evalWindows: number
}

/** Cap on the training text read from a folder, in files. */
const MAX_TEXT_FILES = 10_000

function parseOptimizer(v: unknown, r: ParamReader, where: string): AdamWSettings {
  if (v === undefined) return { ...ADAMW_DEFAULTS }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) r.fail('optimizer', 'must be a mapping, e.g. {name: adamw, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0}')
  const o = new ParamReader(v as Record<string, unknown>, `${where} optimizer`)
  o.oneOf('name', 'adamw', ['adamw'])
  const settings: AdamWSettings = {
    beta1: o.num('beta1', ADAMW_DEFAULTS.beta1, 0, 0.999999),
    beta2: o.num('beta2', ADAMW_DEFAULTS.beta2, 0, 0.99999999),
    eps: o.num('eps', ADAMW_DEFAULTS.eps, 1e-30, 1),
    weightDecay: o.num('weight_decay', ADAMW_DEFAULTS.weightDecay, 0, 10),
  }
  o.done()
  return settings
}

export function parseDistillParams(raw: Record<string, unknown>, where: string): DistillParams {
  const r = new ParamReader(raw, where)
  const batchSize = r.int('batch_size', 8, 1, 4096)
  const p: DistillParams = {
    steps: r.int('steps', 200, 1, 10_000_000),
    batchSize,
    microBatch: r.int('micro_batch', batchSize, 1, batchSize),
    seqlen: r.int('seqlen', 256, 2, 1 << 16),
    order: r.oneOf<WindowOrder>('order', 'shuffled', ['sequential', 'shuffled']),
    seed: r.int('seed', 0, 0, 2 ** 31 - 1),
    lr: r.num('lr', 1e-4, 1e-12, 10),
    schedule: r.oneOf<ScheduleName>('schedule', 'constant', SCHEDULES),
    warmupSteps: r.int('warmup_steps', 0, 0, 10_000_000),
    optimizer: parseOptimizer(r.take('optimizer'), r, where),
    maxGradNorm: r.num('max_grad_norm', 0, 0, 1e12),
    temperature: r.num('temperature', 2, 1e-3, 1000),
    alpha: r.num('alpha', 0.5, 0, 1),
    trainable: r.oneOf('trainable', 'linears', ['linears', 'lora'] as const),
    text: r.optString('text'),
    teacher: r.optString('teacher'),
    evalEvery: r.int('eval_every', 0, 0, 10_000_000),
    evalText: r.optString('eval_text'),
    evalWindows: r.int('eval_windows', 0, 0, 1 << 24),
  }
  r.take('lora')
  r.done()
  if (p.evalEvery > 0 && !p.evalText) r.fail('eval_every', 'needs eval_text (the text to measure perplexity on)')
  if (p.trainable === 'lora') throw new WhittleError('unsupported', null, `${where}: params.trainable lora is not available yet; use trainable: linears`)
  return p
}

/** Token ids of a text file, or of every .txt file in a folder (each with its own BOS), in name order. */
async function trainingIds(model: LoadedModel, where: string): Promise<Int32Array> {
  let files: string[]
  try {
    const st = await stat(where)
    files = st.isDirectory()
      ? (await readdir(where)).filter((f) => f.endsWith('.txt')).sort().slice(0, MAX_TEXT_FILES).map((f) => path.join(where, f))
      : [where]
  } catch {
    throw new WhittleError('not-found', where, 'cannot read the training text')
  }
  if (files.length === 0) throw new WhittleError('validation', where, 'the folder holds no .txt file to train on')
  const parts: Int32Array[] = []
  for (const f of files) parts.push(await tokenizeForEval(model.files, await readTextFile(f)))
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

/** The calibration windows as one stream of ids (windows of the training seqlen are then exactly them). */
function idsFromWindows(windows: Int32Array[]): Int32Array {
  const out = new Int32Array(windows.reduce((s, w) => s + w.length, 0))
  let at = 0
  for (const w of windows) { out.set(w, at); at += w.length }
  return out
}

/** Refuses students whose Linears are stored quantized: their codes cannot take a gradient step. */
function refuseQuantized(ctx: StructureContext<DistillParams>): void {
  for (const t of ctx.view.tensors) {
    if (t.layer === null || !['q', 'k', 'v', 'o', 'gate', 'up', 'down'].includes(t.role)) continue
    const dtype = ctx.view.entry(t.name).dtype
    if (!['F32', 'F16', 'BF16'].includes(dtype)) {
      throw new WhittleError('unsupported', ctx.view.files.path,
        `distill: ${t.name} is stored as ${dtype}; full-parameter training of a quantized student is refused (recover it with LoRA on the frozen quantized weights, or with quantization-aware training)`)
    }
  }
}

async function distillRun(ctx: StructureContext<DistillParams>): Promise<StructureResult> {
  const p = ctx.params
  refuseQuantized(ctx)
  const view = ctx.view
  let ids: Int32Array
  if (p.text) ids = await trainingIds(view, p.text)
  else if (ctx.windows?.length) ids = idsFromWindows(ctx.windows)
  else throw new WhittleError('validation', null, 'distill needs training text: give params.text, or calibration windows')
  if (ids.length < p.seqlen) throw new WhittleError('validation', p.text ?? null, `the training text has ${ids.length} tokens, fewer than one window of ${p.seqlen}`)
  const evalIds = p.evalEvery > 0 && p.evalText ? await tokenizeForEval(view.files, await readTextFile(p.evalText)) : null
  const teacher = p.alpha > 0 ? await loadModel(p.teacher ?? view.files.path) : null
  const trainer = await LlamaTrainer.create(ctx.pool, view, teacher, p.seqlen, { temperature: p.temperature, alpha: p.alpha })
  const before = new Map([...trainer.weights()])
  const evals: string[] = []
  let result
  try {
    result = await train(trainer, ids, {
      steps: p.steps, batchSize: p.batchSize, microBatch: p.microBatch, order: p.order, seed: p.seed, lr: p.lr,
      schedule: p.schedule, warmupSteps: p.warmupSteps, optimizer: p.optimizer, maxGradNorm: p.maxGradNorm,
    }, {
      signal: ctx.signal,
      onStep: async (r: StepReport) => {
        const eta = ((p.steps - r.step - 1) * p.batchSize * p.seqlen) / Math.max(r.tokensPerSecond, 1e-9)
        ctx.onProgress?.((r.step + 1) / p.steps, `step ${r.step + 1}/${p.steps} · loss ${r.loss.toFixed(4)} (CE ${r.ce.toFixed(4)}, KL ${r.kl.toFixed(4)}) · ${r.tokensPerSecond.toFixed(0)} tok/s · ETA ${eta.toFixed(0)} s`)
        if (evalIds && (r.step + 1) % p.evalEvery === 0) {
          const probe = withReplacements(view)
          for (const [name, w] of trainer.weights()) probe.replace(name, w)
          const ppl = (await perplexity(ctx.pool, probe, evalIds, { seqlen: p.seqlen, signal: ctx.signal, maxWindows: p.evalWindows || undefined })).ppl
          evals.push(`${r.step + 1}: ${ppl.toFixed(3)}`)
          ctx.onProgress?.((r.step + 1) / p.steps, `step ${r.step + 1}/${p.steps} · eval perplexity ${ppl.toFixed(3)}`)
        }
      },
    })
    for (const [name, w] of trainer.weights()) view.replace(name, w)
  } finally {
    trainer.free()
  }
  const kind = p.alpha > 0 ? `KD T ${p.temperature} α ${p.alpha}` : 'CE fine-tuning'
  const first = result.first!, last = result.last!
  const note = `${kind}, ${p.steps} steps: loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}, ${result.tokens} tokens, ` +
    `${result.seconds.toFixed(1)} s (${(result.tokens / result.seconds).toFixed(0)} tok/s)${evals.length ? `; eval ppl ${evals.join(', ')}` : ''}`
  return {
    view,
    changed: [...before].map(([name, values]) => ({ name, before: values, format: 'distilled' })),
    note,
  }
}

export const distill: CompressionMethod<DistillParams> = {
  name: 'distill',
  kind: 'structure',
  // Calibration windows are the default training text.
  needs: { calibration: true, hessian: false },
  parseParams: parseDistillParams,
  predict: () => ({ bitsPerWeight: 32, format: 'distilled' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'distill trains the whole model, not single Linears')
  },
  restructure: distillRun,
}
