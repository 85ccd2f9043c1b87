// Analyses that run the model: perplexity, activation outliers, head and layer importance. Each kind
// keeps its form, its running job and its last result; results belong to the open model and are
// dropped when another opens. The perplexity history outlives models: it is how before and after
// are compared.

import { defineStore } from 'pinia'
import { markRaw, reactive, ref, shallowReactive, shallowRef, watch } from 'vue'
import type { HeadWeights, JobId, JobResults, JobSpec } from '@contract/api'
import { jobResult } from '@contract/job-result'
import { getApi } from '../bridge'
import type { HeadRef } from '../charts/heads-option'
import {
  activationSpec,
  DEFAULT_CALIBRATION_SEQLEN,
  DEFAULT_CAPTURE_SAMPLES,
  DEFAULT_PPL_SEQLEN,
  DEFAULT_PROBE_SAMPLES,
  DEFAULT_THRESHOLD,
  perplexitySpec,
  probeSpec,
  type ActivationForm,
  type CalibrationForm,
  type PerplexityForm,
} from '../lib/analysis-requests'
import type { PerplexityRun } from '../lib/ppl-history'
import { messageOf, useErrorStore } from './errors'
import { failureOf } from './inspect'
import { isTerminal, useJobStore } from './jobs'
import { useModelStore } from './model'

const ANALYSIS_KINDS = ['perplexity', 'activations', 'heads', 'layers'] as const
export type AnalysisKind = (typeof ANALYSIS_KINDS)[number]

/** One kind of analysis: the job computing it and what it last produced. */
export interface JobSlot<R> {
  result: R | null
  jobId: JobId | null
  /** From Run until the result (or the failure) is in. */
  running: boolean
  failure: string | null
  /** The failure is the user's own cancel (shown as a note, not an error). */
  cancelled: boolean
}

/** Runs kept in the history; the oldest go first. */
const MAX_HISTORY = 50

function emptySlot<R>(): JobSlot<R> {
  return { result: null, jobId: null, running: false, failure: null, cancelled: false }
}

export const useAnalysisStore = defineStore('analysis', () => {
  const model = useModelStore()
  const jobs = useJobStore()
  const errors = useErrorStore()

  const pplForm = reactive<PerplexityForm>({
    text: '',
    seqlen: DEFAULT_PPL_SEQLEN,
    maxWindows: null,
    protocol: 'gptq',
  })
  const activationForm = reactive<ActivationForm>({
    threshold: DEFAULT_THRESHOLD,
    samples: DEFAULT_CAPTURE_SAMPLES,
    seqlen: DEFAULT_CALIBRATION_SEQLEN,
  })
  const headsForm = reactive<CalibrationForm>({ samples: DEFAULT_PROBE_SAMPLES, seqlen: DEFAULT_CALIBRATION_SEQLEN })
  const layersForm = reactive<CalibrationForm>({ samples: DEFAULT_PROBE_SAMPLES, seqlen: DEFAULT_CALIBRATION_SEQLEN })

  // Slots are shallow and results go in markRaw: an activation report of a large model holds millions
  // of numbers, which must not become deeply reactive.
  const slots: { [K in AnalysisKind]: JobSlot<JobResults[K]> } = {
    perplexity: shallowReactive(emptySlot()),
    activations: shallowReactive(emptySlot()),
    heads: shallowReactive(emptySlot()),
    layers: shallowReactive(emptySlot()),
  }
  const { perplexity, activations, heads, layers } = slots

  const history = ref<PerplexityRun[]>([])
  let nextRunId = 1

  const selectedHead = ref<HeadRef | null>(null)
  /** Heads ("layer:head") and blocks marked in the charts for pruning. */
  const markedHeads = ref<string[]>([])
  const markedLayers = ref<number[]>([])

  function toggle<T>(list: T[], item: T): T[] {
    return list.includes(item) ? list.filter((x) => x !== item) : [...list, item]
  }
  function toggleMarkedHead(head: HeadRef): void {
    markedHeads.value = toggle(markedHeads.value, `${head.layer}:${head.head}`)
  }
  function toggleMarkedLayer(layer: number): void {
    markedLayers.value = toggle(markedLayers.value, layer).sort((a, b) => a - b)
  }
  /** The marked heads as prune_heads wants them: layer → head indices. */
  function markedHeadMap(): Record<string, number[]> {
    const out: Record<string, number[]> = {}
    for (const key of markedHeads.value) {
      const [layer, head] = key.split(':').map(Number)
      ;(out[String(layer)] ??= []).push(head)
    }
    for (const list of Object.values(out)) list.sort((a, b) => a - b)
    return out
  }
  const headWeights = shallowRef<HeadWeights | null>(null)
  const headWeightsLoading = ref(false)
  const headWeightsFailure = ref<string | null>(null)

  /** Bumped per run (and per model) so only the newest run of a kind may install its result. */
  const tickets: Record<AnalysisKind, number> = { perplexity: 0, activations: 0, heads: 0, layers: 0 }
  let headTicket = 0

  async function cancelIfRunning(id: JobId | null): Promise<void> {
    const u = id ? jobs.get(id) : undefined
    if (id && (!u || !isTerminal(u.state))) await jobs.cancel(id).catch(() => undefined)
  }

  /**
   * Starts `spec` for `kind`, replacing a run of that kind still in progress, and resolves with the
   * result once it is in (null when it failed, was cancelled, or was overtaken by a newer run).
   */
  async function runJob<K extends AnalysisKind>(kind: K, spec: JobSpec): Promise<JobResults[K] | null> {
    const slot = slots[kind]
    await cancelIfRunning(slot.jobId)
    const mine = ++tickets[kind]
    slot.failure = null
    slot.cancelled = false
    slot.jobId = null
    slot.running = true
    let id: JobId
    try {
      id = await jobs.start(spec)
    } catch (e) {
      if (mine === tickets[kind]) {
        slot.running = false
        slot.failure = messageOf(e)
      }
      errors.report(e)
      return null
    }
    if (mine !== tickets[kind]) {
      // A newer run (or another model) took over while this one was being started.
      void cancelIfRunning(id)
      return null
    }
    slot.jobId = id
    const end = await jobs.whenFinished(id)
    if (mine !== tickets[kind]) return null
    slot.jobId = null
    slot.running = false
    const result = jobResult(end, kind)
    if (result) {
      slot.result = markRaw(result)
      return result
    }
    slot.failure = end.state === 'done' ? `the engine sent no ${kind} result` : failureOf(end)
    slot.cancelled = end.state === 'cancelled'
    // A cancel is the user's own doing; anything else is worth the banner.
    if (end.state !== 'cancelled') errors.report(slot.failure)
    return null
  }

  async function runPerplexity(): Promise<void> {
    const summary = model.summary
    if (!summary) return
    const modelName = model.displayName
    const report = await runJob('perplexity', perplexitySpec(summary.id, pplForm))
    if (!report) return
    history.value.push({
      id: nextRunId++,
      modelName,
      modelPath: summary.path,
      text: report.text,
      seqlen: report.seqlen,
      protocol: report.protocol,
      windows: report.windows,
      tokens: report.tokens,
      ppl: report.ppl,
      meanNll: report.meanNll,
    })
    if (history.value.length > MAX_HISTORY) history.value.splice(0, history.value.length - MAX_HISTORY)
  }

  async function runActivations(): Promise<void> {
    const summary = model.summary
    if (summary) await runJob('activations', activationSpec(summary.id, activationForm))
  }

  async function runHeads(): Promise<void> {
    const summary = model.summary
    if (summary) await runJob('heads', probeSpec('heads', summary.id, headsForm))
  }

  async function runLayers(): Promise<void> {
    const summary = model.summary
    if (summary) await runJob('layers', probeSpec('layers', summary.id, layersForm))
  }

  async function cancel(kind: AnalysisKind): Promise<void> {
    const id = slots[kind].jobId
    if (!id) return
    try {
      await jobs.cancel(id)
    } catch (e) {
      errors.report(e)
    }
  }

  /** Shows one head's q/k/v/o weights; the newest choice wins over slower earlier ones. */
  async function selectHead(head: HeadRef): Promise<void> {
    const summary = model.summary
    if (!summary) return
    const current = selectedHead.value
    if (
      current &&
      current.layer === head.layer &&
      current.head === head.head &&
      (headWeights.value || headWeightsLoading.value)
    )
      return
    const mine = ++headTicket
    selectedHead.value = { layer: head.layer, head: head.head }
    headWeightsLoading.value = true
    headWeightsFailure.value = null
    try {
      const weights = await getApi().headWeights({ modelId: summary.id, layer: head.layer, head: head.head })
      if (mine !== headTicket) return
      headWeights.value = markRaw(weights)
    } catch (e) {
      if (mine !== headTicket) return
      headWeights.value = null
      headWeightsFailure.value = messageOf(e)
      errors.report(e)
    } finally {
      if (mine === headTicket) headWeightsLoading.value = false
    }
  }

  /** A newly opened model invalidates every result computed for the previous one (not the history). */
  watch(
    () => model.summary?.id,
    () => {
      for (const kind of ANALYSIS_KINDS) {
        const slot = slots[kind]
        void cancelIfRunning(slot.jobId)
        tickets[kind]++
        Object.assign(slot, emptySlot())
      }
      headTicket++
      selectedHead.value = null
      markedHeads.value = []
      markedLayers.value = []
      headWeights.value = null
      headWeightsLoading.value = false
      headWeightsFailure.value = null
    },
  )

  return {
    pplForm,
    activationForm,
    headsForm,
    layersForm,
    perplexity,
    activations,
    heads,
    layers,
    history,
    selectedHead,
    headWeights,
    headWeightsLoading,
    headWeightsFailure,
    runPerplexity,
    runActivations,
    runHeads,
    runLayers,
    cancel,
    selectHead,
    markedHeads,
    markedLayers,
    toggleMarkedHead,
    toggleMarkedLayer,
    markedHeadMap,
  }
})
