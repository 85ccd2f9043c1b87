// Recovering what compression lost: a training step (distill = knowledge distillation, lora, or lora on
// an NF4 base = QLoRA) run on the current result, the student, with the original as the teacher. The
// form is built from the engine's method catalogue; the job's progress carries each optimizer step's
// numbers and each eval, gathered here into the curves the live charts draw; pause, resume and cancel
// go to the engine; the recovered model comes back as a compression result, ready for export.

import { defineStore } from 'pinia'
import { computed, markRaw, reactive, ref, shallowRef, watch } from 'vue'
import type {
  CompressionSummary,
  JobId,
  JobUpdate,
  ModelId,
  RecipeDoc,
  TrainingEvalPoint,
  TrainingProgress,
  TrainingStepPoint,
} from '@contract/api'
import { jobResult } from '@contract/job-result'
import type { MethodInfo, ParamSpec } from '@contract/method-params'
import { getApi } from '../bridge'
import { numberOf } from '../lib/analysis-requests'
import { compressSpec } from '../lib/compress-results'
import { useCompressRunStore } from './compress-run'
import { messageOf, useErrorStore } from './errors'
import { failureOf } from './inspect'
import { isTerminal, useJobStore } from './jobs'
import { useMethodsStore } from './methods'
import { useModelStore } from './model'

export type RecoverKind = 'kd' | 'lora' | 'qlora' | 'ternary-qat'

export interface RecoverKindInfo {
  id: RecoverKind
  label: string
  /** The engine method the kind runs. */
  method: string
  /** Params the kind fixes (QLoRA: the frozen base held as NF4). */
  fixed: Record<string, unknown>
  /** The method's params the form shows, in this order (their specs come from the catalogue). */
  shown: readonly string[]
  title: string
}

export const RECOVER_KINDS: readonly RecoverKindInfo[] = [
  {
    id: 'kd',
    label: 'KD',
    method: 'distill',
    fixed: {},
    shown: ['steps', 'lr', 'temperature', 'alpha', 'trainable', 'eval_every', 'batch_size', 'seqlen'],
    title: "Knowledge distillation: the student learns the teacher's softened outputs (α·T²·KL + (1 − α)·CE)",
  },
  {
    id: 'lora',
    label: 'LoRA',
    method: 'lora',
    fixed: {},
    shown: ['r', 'alpha', 'steps', 'lr', 'batch_size', 'seqlen'],
    title: 'Low-rank adapters on the frozen student, trained on next-token cross-entropy, then merged',
  },
  {
    id: 'qlora',
    label: 'QLoRA',
    method: 'lora',
    fixed: { base: 'nf4' },
    shown: ['r', 'alpha', 'steps', 'lr', 'batch_size', 'seqlen'],
    title: 'LoRA on the student held in NF4 (packed 4-bit codes, dequantized block by block)',
  },
  {
    id: 'ternary-qat',
    label: 'Ternary QAT',
    method: 'distill',
    fixed: { qat: 'ternary', trainable: 'linears' },
    shown: ['steps', 'lr', 'temperature', 'alpha', 'eval_every', 'batch_size', 'seqlen'],
    title:
      'BitNet b1.58 by distillation: the student runs on ternary weights and 8-bit inputs, gradients pass straight through to latent weights',
  },
]

export function kindInfo(kind: RecoverKind): RecoverKindInfo {
  return RECOVER_KINDS.find((k) => k.id === kind)!
}

/** The specs of the params a kind's form shows, from the engine's catalogue (absent ones are left out). */
export function formSpecs(catalogue: readonly MethodInfo[], kind: RecoverKind): ParamSpec[] {
  const info = kindInfo(kind)
  const method = catalogue.find((m) => m.name === info.method)
  if (!method) return []
  return info.shown.map((name) => method.params.find((p) => p.name === name)).filter((p): p is ParamSpec => !!p)
}

export interface RecoverRequest {
  kind: RecoverKind
  /** Values typed into the form by param name; empty (undefined, null, '') means the engine's default. */
  values: Record<string, unknown>
  /** Regexes over tensor names (one per line or comma); empty = every decoder-block Linear. */
  targets: string
  /** Where eval_every measures perplexity (distill), and on how many windows (null = all). */
  evalText: string | null
  evalWindows: number | null
}

/** The one-step recipe a recovery runs. Only params the form shows are sent, so the rest keep defaults. */
export function recoverRecipe(catalogue: readonly MethodInfo[], req: RecoverRequest): RecipeDoc {
  const info = kindInfo(req.kind)
  const params: Record<string, unknown> = {}
  for (const spec of formSpecs(catalogue, req.kind)) {
    const v = req.values[spec.name]
    if (v !== undefined && v !== null && v !== '') params[spec.name] = v
  }
  Object.assign(params, info.fixed)
  const evalEvery = typeof params.eval_every === 'number' ? params.eval_every : 0
  if (info.method === 'distill' && evalEvery > 0 && req.evalText) {
    params.eval_text = req.evalText
    if (req.evalWindows !== null) params.eval_windows = req.evalWindows
  }
  const include = req.targets
    .split(/[\n,]+/)
    .map((s) => s.trim())
    .filter(Boolean)
  return { steps: [{ method: info.method, ...(include.length ? { targets: { include } } : {}), params }] }
}

/** A training job's curves as received so far. */
export interface TrainingCurve {
  totalSteps: number
  steps: TrainingStepPoint[]
  evals: TrainingEvalPoint[]
}

export const EMPTY_CURVE: TrainingCurve = { totalSteps: 0, steps: [], evals: [] }

/** Adds an update's points, each step once (a repeated or late one replaces its own), in step order. */
export function appendTraining(curve: TrainingCurve, t: TrainingProgress): TrainingCurve {
  const merge = <P extends { step: number }>(have: P[], more: readonly P[]): P[] => {
    if (more.length === 0) return have
    const inOrder = more.every((p, i) => p.step > (i === 0 ? (have[have.length - 1]?.step ?? 0) : more[i - 1].step))
    if (inOrder) return [...have, ...more]
    const byStep = new Map(have.map((p) => [p.step, p]))
    for (const p of more) byStep.set(p.step, p)
    return [...byStep.values()].sort((a, b) => a.step - b.step)
  }
  return {
    totalSteps: t.totalSteps || curve.totalSteps,
    steps: merge(curve.steps, t.steps),
    evals: merge(curve.evals, t.evals),
  }
}

/** The student a recovery trains and the teacher it learns from, with their perplexities when known. */
export interface RecoverSubjects {
  studentId: ModelId
  studentLabel: string
  /** The teacher's perplexity (the compression's "before"), null when not measured. */
  teacherPpl: number | null
  /** The student's perplexity at the start (the compression's "after"). */
  studentPpl: number | null
  /** The student is a compression result (else the open model itself, fine-tuned against itself). */
  compressed: boolean
}

export const useRecoverStore = defineStore('recover', () => {
  const model = useModelStore()
  const jobs = useJobStore()
  const errors = useErrorStore()
  const methods = useMethodsStore()
  const compressRun = useCompressRunStore()

  const kind = ref<RecoverKind>('kd')
  /** Form values per kind, so switching kinds keeps what was typed. */
  const values = reactive<Record<RecoverKind, Record<string, unknown>>>(
    Object.fromEntries(RECOVER_KINDS.map((k) => [k.id, {}])) as Record<RecoverKind, Record<string, unknown>>,
  )
  const targets = ref('')
  const jobId = ref<JobId | null>(null)
  const running = ref(false)
  const paused = ref(false)
  const failure = ref<string | null>(null)
  const cancelled = ref(false)
  const message = ref('')
  const progress = ref(0)
  const curve = shallowRef<TrainingCurve>(EMPTY_CURVE)
  const result = shallowRef<CompressionSummary | null>(null)
  /** The subjects of the run shown (fixed when it starts, so the reference lines stay put). */
  const runSubjects = shallowRef<RecoverSubjects | null>(null)
  let runTicket = 0
  /** Updates that arrive before startJob answers with the id, by job id. */
  let early: JobUpdate[] | null = null

  const subjects = computed<RecoverSubjects | null>(() => {
    const r = compressRun.result
    if (r)
      return {
        studentId: r.compressedModelId,
        studentLabel: `${compressRun.resultModelName} after ${r.recipe.steps.map((s) => s.method).join(' → ')}`,
        teacherPpl: r.pplBefore,
        studentPpl: r.pplAfter,
        compressed: true,
      }
    const s = model.summary
    if (!s) return null
    return { studentId: s.id, studentLabel: model.displayName, teacherPpl: null, studentPpl: null, compressed: false }
  })
  const specs = computed(() => formSpecs(methods.catalogue, kind.value))
  const latest = computed(() => curve.value.steps[curve.value.steps.length - 1] ?? null)

  function apply(u: JobUpdate): void {
    if (jobId.value === null) {
      early?.push(u)
      return
    }
    if (u.id !== jobId.value) return
    if (u.training) curve.value = markRaw(appendTraining(curve.value, u.training))
    if (!isTerminal(u.state)) {
      paused.value = !!u.paused
      message.value = u.message
      progress.value = u.progress
    }
  }
  // One subscription for the life of the store: every update with training numbers must be seen (the
  // job store keeps only each job's latest, which would drop points between two renders).
  getApi().onJob(apply)

  function setValue(name: string, value: unknown): void {
    values[kind.value] = { ...values[kind.value], [name]: value }
  }

  async function run(): Promise<void> {
    const who = subjects.value
    if (!who || running.value) return
    await methods.load()
    const mine = ++runTicket
    const recipe = recoverRecipe(methods.catalogue, {
      kind: kind.value,
      values: values[kind.value],
      targets: targets.value,
      evalText: compressRun.form.evalText.trim() || model.appInfo?.evalTextPath || null,
      evalWindows: numberOf(compressRun.form.maxEvalWindows),
    })
    jobId.value = null
    failure.value = null
    cancelled.value = false
    result.value = null
    paused.value = false
    message.value = 'starting'
    progress.value = 0
    curve.value = EMPTY_CURVE
    runSubjects.value = who
    running.value = true
    early = []
    let id: JobId
    try {
      id = await jobs.start(compressSpec(who.studentId, recipe, compressRun.form))
    } catch (e) {
      early = null
      if (mine === runTicket) {
        running.value = false
        failure.value = messageOf(e)
      }
      errors.report(e)
      return
    }
    const before = early ?? []
    early = null
    if (mine !== runTicket) return
    jobId.value = id
    for (const u of before) apply(u)
    const end = await jobs.whenFinished(id)
    if (mine !== runTicket) return
    apply(end)
    running.value = false
    paused.value = false
    const summary = jobResult(end, 'compress')
    if (summary) {
      result.value = markRaw(summary)
      return
    }
    failure.value = end.state === 'done' ? 'the engine sent no result' : failureOf(end)
    cancelled.value = end.state === 'cancelled'
    if (end.state !== 'cancelled') errors.report(failure.value)
  }

  async function call(what: 'pauseJob' | 'resumeJob'): Promise<void> {
    const id = jobId.value
    if (!id || !running.value) return
    try {
      await getApi()[what]({ id })
    } catch (e) {
      errors.report(e)
    }
  }

  const pause = (): Promise<void> => call('pauseJob')
  const resume = (): Promise<void> => call('resumeJob')

  async function cancel(): Promise<void> {
    if (!jobId.value || !running.value) return
    try {
      await jobs.cancel(jobId.value)
    } catch (e) {
      errors.report(e)
    }
  }

  /** A newly opened model ends the run and its result. */
  watch(
    () => model.summary?.id,
    () => {
      const id = jobId.value
      if (id && running.value) void jobs.cancel(id).catch(() => undefined)
      runTicket++
      jobId.value = null
      running.value = false
      paused.value = false
      failure.value = null
      cancelled.value = false
      result.value = null
      curve.value = EMPTY_CURVE
      runSubjects.value = null
    },
  )

  return {
    kind,
    values,
    targets,
    specs,
    subjects,
    runSubjects,
    jobId,
    running,
    paused,
    failure,
    cancelled,
    message,
    progress,
    curve,
    latest,
    result,
    setValue,
    run,
    pause,
    resume,
    cancel,
  }
})
