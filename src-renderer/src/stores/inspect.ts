// What the user is looking at: the active tab, the selected tensor and its detail (computed by a
// 'tensor' job), and the last whole-model scan (a 'scan' job) with its outlier threshold k.

import { defineStore } from 'pinia'
import { ref, shallowRef, watch } from 'vue'
import type { JobId, JobUpdate, ScanResult, TensorDetail } from '@contract/api'
import { jobResult } from '@contract/job-result'
import { useErrorStore } from './errors'
import { isTerminal, useJobStore } from './jobs'
import { useModelStore } from './model'

/** The main area's tabs: the model's weights (overview, tensor), the analyses that run it, then compression. */
export type Tab =
  | 'overview'
  | 'tensor'
  | 'run'
  | 'activations'
  | 'heads'
  | 'layers'
  | 'compress'
  | 'prune'
  | 'structure'
  | 'recover'
  | 'compare'

export const DEFAULT_K = 6
/** Tensor details kept so flipping between tensors does not re-read them. */
const DETAIL_CACHE_SIZE = 16

/** The readable reason a job produced no result. */
export function failureOf(update: JobUpdate): string {
  if (update.state === 'cancelled') return 'Cancelled.'
  return update.error || update.message || 'the job failed'
}

export const useInspectStore = defineStore('inspect', () => {
  const model = useModelStore()
  const jobs = useJobStore()
  const errors = useErrorStore()

  const tab = ref<Tab>('overview')
  const k = ref(DEFAULT_K)
  const selectedName = ref<string | null>(null)
  const detail = shallowRef<TensorDetail | null>(null)
  const detailJobId = ref<JobId | null>(null)
  /** From the moment a tensor is chosen until its detail (or failure) is in. */
  const detailLoading = ref(false)
  const detailFailure = ref<string | null>(null)
  const scan = shallowRef<ScanResult | null>(null)
  const scanJobId = ref<JobId | null>(null)
  const scanFailure = ref<string | null>(null)
  const scanning = ref(false)
  /** Bumped per scan (and per model) so only the newest scan may install its result. */
  let scanTicket = 0
  const cache = new Map<string, TensorDetail>()
  /** Model, tensor and k of what `detail` shows or the running job computes. */
  let detailKey = ''

  /** k as the engine accepts it: a finite number in [1, 1000]. */
  function effectiveK(): number {
    const v = Number(k.value)
    return Number.isFinite(v) ? Math.min(1000, Math.max(1, v)) : DEFAULT_K
  }

  async function cancelIfRunning(id: JobId | null): Promise<void> {
    const u = id ? jobs.get(id) : undefined
    if (id && (!u || !isTerminal(u.state))) await jobs.cancel(id).catch(() => undefined)
  }

  async function selectTensor(name: string): Promise<void> {
    tab.value = 'tensor'
    const summary = model.summary
    if (!summary) return
    const kk = effectiveK()
    const key = `${summary.id}\u0000${name}\u0000${kk}`
    // Already shown, or already being computed, for this model, tensor and k: just show the tab.
    if (key === detailKey && (detail.value || detailLoading.value)) return
    void cancelIfRunning(detailJobId.value)
    selectedName.value = name
    detailKey = key
    detailFailure.value = null
    const cached = cache.get(key)
    if (cached) {
      detail.value = cached
      detailJobId.value = null
      detailLoading.value = false
      return
    }
    detail.value = null
    detailJobId.value = null
    detailLoading.value = true
    let id: JobId
    try {
      id = await jobs.start({ kind: 'tensor', modelId: summary.id, name, k: kk })
    } catch (e) {
      if (detailKey === key) {
        detailLoading.value = false
        detailFailure.value = e instanceof Error ? e.message : String(e)
      }
      errors.report(e)
      return
    }
    // Another tensor was chosen while this job was being started.
    if (detailKey !== key) return void cancelIfRunning(id)
    detailJobId.value = id
    const end = await jobs.whenFinished(id)
    if (detailJobId.value !== id) return
    detailJobId.value = null
    detailLoading.value = false
    const result = jobResult(end, 'tensor')
    if (result) {
      remember(key, result)
      detail.value = result
    } else {
      detailFailure.value = failureOf(end)
    }
  }

  function remember(key: string, d: TensorDetail): void {
    cache.set(key, d)
    while (cache.size > DETAIL_CACHE_SIZE) cache.delete(cache.keys().next().value!)
  }

  async function runScan(): Promise<void> {
    const summary = model.summary
    if (!summary) return
    await cancelIfRunning(scanJobId.value)
    const mine = ++scanTicket
    scanFailure.value = null
    scanJobId.value = null
    scanning.value = true
    let id: JobId
    try {
      id = await jobs.start({ kind: 'scan', modelId: summary.id, k: effectiveK() })
    } catch (e) {
      if (mine === scanTicket) {
        scanning.value = false
        scanFailure.value = e instanceof Error ? e.message : String(e)
      }
      errors.report(e)
      return
    }
    if (mine !== scanTicket) return void cancelIfRunning(id)
    scanJobId.value = id
    const end = await jobs.whenFinished(id)
    if (mine !== scanTicket) return
    scanJobId.value = null
    scanning.value = false
    const result = jobResult(end, 'scan')
    if (result) scan.value = result
    else scanFailure.value = failureOf(end)
  }

  /** A newly opened model invalidates everything computed for the previous one. */
  watch(
    () => model.summary?.id,
    () => {
      void cancelIfRunning(detailJobId.value)
      void cancelIfRunning(scanJobId.value)
      selectedName.value = null
      detail.value = null
      detailJobId.value = null
      detailLoading.value = false
      detailFailure.value = null
      scan.value = null
      scanJobId.value = null
      scanFailure.value = null
      scanning.value = false
      scanTicket++
      cache.clear()
      detailKey = ''
      // The tensor tab would show nothing now; an analysis tab stays, ready to run on the new model.
      if (tab.value === 'tensor') tab.value = 'overview'
    },
  )

  return {
    tab,
    k,
    selectedName,
    detail,
    detailJobId,
    detailLoading,
    detailFailure,
    scan,
    scanJobId,
    scanning,
    scanFailure,
    selectTensor,
    runScan,
  }
})
