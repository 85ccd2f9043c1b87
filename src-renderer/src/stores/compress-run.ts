// Running the recipe and reading its cost: the compress job (perplexity before and after, size,
// per-tensor errors), the per-tensor table's order, a before/after histogram of one tensor, and the
// mixed-precision proposal built from the run's errors.

import { defineStore } from 'pinia'
import { computed, markRaw, reactive, ref, shallowRef, watch } from 'vue'
import type { CompressionSummary, JobId, ModelId, RecipeDoc, TensorDetail } from '@contract/api'
import { jobResult } from '@contract/job-result'
import { compressSpec, sortTensors, type CompressRunForm, type TensorSort } from '../lib/compress-results'
import { DEFAULT_PPL_SEQLEN, numberOf, type NumberField } from '../lib/analysis-requests'
import {
  applyProposal,
  proposeBits,
  rankSensitivity,
  reassignableIn,
  storageFromRecipe,
  type Proposal,
} from '../lib/mixed-precision'
import { useCompressStore } from './compress'
import { messageOf, useErrorStore } from './errors'
import { useMethodsStore } from './methods'
import { failureOf } from './inspect'
import { isTerminal, useJobStore } from './jobs'
import { useModelStore } from './model'

/** Bins of both overlaid histograms. */
export const OVERLAY_BINS = 128
/** Overlays kept so flipping between rows does not read the tensors again. */
const OVERLAY_CACHE_SIZE = 16
export const DEFAULT_BIT_CHOICES = '3, 4, 8'

export interface Overlay {
  name: string | null
  before: TensorDetail | null
  after: TensorDetail | null
  loading: boolean
  failure: string | null
  jobId: JobId | null
}

/** "3, 4, 8" → [3, 4, 8]: whole bit widths 2–8, each once, ascending. */
export function parseBitChoices(text: string): number[] {
  const picked = text
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n >= 2 && n <= 8)
  return [...new Set(picked)].sort((a, b) => a - b)
}

export const useCompressRunStore = defineStore('compress-run', () => {
  const model = useModelStore()
  const jobs = useJobStore()
  const errors = useErrorStore()
  const compress = useCompressStore()
  const methods = useMethodsStore()

  const form = reactive<CompressRunForm>({ evalText: '', seqlen: DEFAULT_PPL_SEQLEN, maxEvalWindows: null })
  const jobId = ref<JobId | null>(null)
  const running = ref(false)
  const failure = ref<string | null>(null)
  const cancelled = ref(false)
  const result = shallowRef<CompressionSummary | null>(null)
  /** The model the result was computed on, by name, for the panels' titles. */
  const resultModelName = ref('')
  /** null = the engine's order (layer by layer). */
  const sort = ref<TensorSort | null>(null)
  const overlay = reactive<Overlay>({
    name: null,
    before: null,
    after: null,
    loading: false,
    failure: null,
    jobId: null,
  })
  const logScale = ref(false)
  const targetBpw = ref<NumberField>(null)
  const bitChoices = ref(DEFAULT_BIT_CHOICES)
  const acceptNote = ref<string | null>(null)

  let runTicket = 0
  let overlayTicket = 0
  const overlayCache = new Map<string, { before: TensorDetail; after: TensorDetail }>()

  const sortedTensors = computed(() => {
    const r = result.value
    if (!r) return []
    return sort.value ? sortTensors(r.tensors, sort.value) : r.tensors
  })
  const sensitivity = computed(() => (result.value ? rankSensitivity(result.value.tensors) : []))
  const choices = computed(() => parseBitChoices(bitChoices.value))
  const proposal = computed<Proposal | null>(() => {
    const r = result.value
    const target = numberOf(targetBpw.value)
    if (!r || target === null || target <= 0 || choices.value.length === 0) return null
    return proposeBits(sensitivity.value, {
      target,
      choices: choices.value,
      storage: storageFromRecipe(methods.catalogue, r.recipe),
      reassignable: reassignableIn(methods.catalogue, r.recipe),
    })
  })

  async function cancelIfRunning(id: JobId | null): Promise<void> {
    const u = id ? jobs.get(id) : undefined
    if (id && (!u || !isTerminal(u.state))) await jobs.cancel(id).catch(() => undefined)
  }

  function clearOverlay(): void {
    void cancelIfRunning(overlay.jobId)
    overlayTicket++
    Object.assign(overlay, { name: null, before: null, after: null, loading: false, failure: null, jobId: null })
  }

  /** Validates the recipe, then runs it on the open model; a run still in progress is replaced. */
  async function run(): Promise<void> {
    const summary = model.summary
    if (!summary) return
    const modelName = model.displayName
    // A result belongs to the run that produced it: the previous one leaves as this run starts, so a
    // cancel can never leave an old result under a recipe it did not come from.
    result.value = null
    acceptNote.value = null
    clearOverlay()
    running.value = true
    // The mixed-precision proposal reads each step's method from the catalogue (loaded once).
    void methods.load()
    await cancelIfRunning(jobId.value)
    const mine = ++runTicket
    failure.value = null
    cancelled.value = false
    jobId.value = null
    running.value = true
    if (compress.draftError || !(await compress.validate())) {
      if (mine !== runTicket) return
      running.value = false
      // validate answers null only with the newest check's error (an overtaken check takes its verdict).
      failure.value = `The recipe is not valid: ${compress.draftError ?? compress.recipeError}`
      return
    }
    if (mine !== runTicket) return
    let id: JobId
    try {
      id = await jobs.start(compressSpec(summary.id, compress.recipe, form))
    } catch (e) {
      if (mine === runTicket) {
        running.value = false
        failure.value = messageOf(e)
      }
      errors.report(e)
      return
    }
    if (mine !== runTicket) return void cancelIfRunning(id)
    jobId.value = id
    const end = await jobs.whenFinished(id)
    if (mine !== runTicket) return
    jobId.value = null
    running.value = false
    const compressed = jobResult(end, 'compress')
    if (compressed) {
      install(compressed, modelName)
      return
    }
    failure.value = end.state === 'done' ? 'the engine sent no compression result' : failureOf(end)
    cancelled.value = end.state === 'cancelled'
    if (end.state !== 'cancelled') errors.report(failure.value)
  }

  function install(summary: CompressionSummary, modelName: string): void {
    result.value = markRaw(summary)
    resultModelName.value = modelName
    acceptNote.value = null
    clearOverlay()
    overlayCache.clear()
    // A first target a little above what the run reached, so the proposal has something to spend.
    if (numberOf(targetBpw.value) === null) targetBpw.value = Number((summary.bitsPerWeight + 0.5).toFixed(2))
    // Open the overlay on the tensor the run hurt most: the first thing worth looking at.
    const top = sensitivity.value[0]
    if (top) void showOverlay(top.name)
  }

  /** Runs a given recipe (e.g. the heads or layers marked in the analysis views) as the editor's recipe. */
  async function runRecipe(recipe: RecipeDoc): Promise<void> {
    compress.apply(recipe)
    await run()
  }

  async function cancel(): Promise<void> {
    if (!jobId.value) return
    try {
      await jobs.cancel(jobId.value)
    } catch (e) {
      errors.report(e)
    }
  }

  /** Runs one tensor job to its end: the detail, or an Error with the reason. */
  async function tensorDetail(
    modelId: ModelId,
    name: string,
    range: [number, number] | undefined,
    mine: number,
  ): Promise<TensorDetail> {
    const id = await jobs.start({ kind: 'tensor', modelId, name, bins: OVERLAY_BINS, ...(range ? { range } : {}) })
    if (mine !== overlayTicket) {
      void cancelIfRunning(id)
      throw new Error('overtaken')
    }
    overlay.jobId = id
    const end = await jobs.whenFinished(id)
    if (mine === overlayTicket) overlay.jobId = null
    const detail = jobResult(end, 'tensor')
    if (detail) return detail
    throw new Error(end.state === 'done' ? 'the engine sent no tensor detail' : failureOf(end))
  }

  /**
   * The tensor's histogram before and after, on shared bins: the original first, over its own
   * [min, max]; then the compressed one over that same range (values it moved outside are counted
   * as below/above).
   */
  async function showOverlay(name: string): Promise<void> {
    const r = result.value
    if (!r) return
    if (overlay.name === name && (overlay.loading || overlay.after)) return
    void cancelIfRunning(overlay.jobId)
    const mine = ++overlayTicket
    const key = `${r.compressedModelId}\u0000${name}`
    Object.assign(overlay, { name, before: null, after: null, loading: true, failure: null, jobId: null })
    const cached = overlayCache.get(key)
    if (cached) {
      Object.assign(overlay, { before: cached.before, after: cached.after, loading: false })
      return
    }
    try {
      const before = markRaw(await tensorDetail(r.sourceModelId, name, undefined, mine))
      if (mine !== overlayTicket) return
      overlay.before = before
      const after = markRaw(
        await tensorDetail(r.compressedModelId, name, [before.histogram.lo, before.histogram.hi], mine),
      )
      if (mine !== overlayTicket) return
      overlay.after = after
      overlay.loading = false
      overlayCache.set(key, { before, after })
      while (overlayCache.size > OVERLAY_CACHE_SIZE) overlayCache.delete(overlayCache.keys().next().value!)
    } catch (e) {
      if (mine !== overlayTicket) return
      overlay.loading = false
      overlay.failure = messageOf(e)
      if (overlay.failure !== 'Cancelled.') errors.report(overlay.failure)
    }
  }

  /**
   * Writes the proposal into the recipe as per-tensor bit overrides. Refused when the recipe's steps
   * no longer line up with the run's (the overrides would land on other methods).
   */
  function acceptProposal(): boolean {
    const r = result.value
    const p = proposal.value
    if (!r || !p) return false
    const now = compress.recipe.steps
    const moved = r.recipe.steps.findIndex((s, i) => now[i]?.method !== s.method)
    if (moved >= 0) {
      acceptNote.value = `The recipe's step ${moved + 1} is no longer the run's ${r.recipe.steps[moved].method}; run it again before accepting.`
      errors.report(acceptNote.value)
      return false
    }
    const before = compress.recipe
    compress.apply(applyProposal(methods.catalogue, before, p.assignments))
    const changed = compress.recipe !== before
    acceptNote.value = changed
      ? 'Written into the recipe as overrides; run it to measure the result.'
      : 'The recipe already gives every tensor these bits.'
    return changed
  }

  /** A newly opened model invalidates the run and its result. */
  watch(
    () => model.summary?.id,
    () => {
      void cancelIfRunning(jobId.value)
      runTicket++
      jobId.value = null
      running.value = false
      failure.value = null
      cancelled.value = false
      result.value = null
      acceptNote.value = null
      clearOverlay()
      overlayCache.clear()
    },
  )

  return {
    form,
    jobId,
    running,
    failure,
    cancelled,
    result,
    resultModelName,
    sort,
    sortedTensors,
    overlay,
    logScale,
    targetBpw,
    bitChoices,
    choices,
    sensitivity,
    proposal,
    acceptNote,
    run,
    runRecipe,
    cancel,
    showOverlay,
    acceptProposal,
  }
})
