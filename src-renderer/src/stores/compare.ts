// The Compare view's state: the open model's recorded results (every compress run, kept across
// restarts by the engine), which evaluation setting the chart shows, the selected point(s) for the
// details and the side-by-side, and a sweep (one step's parameter over a list of values) that runs the
// Compress tab's recipe once per value and fills the chart as it goes.

import { defineStore } from 'pinia'
import { computed, ref, shallowRef, watch } from 'vue'
import type { JobId, ResultPoint, RecipeDoc } from '@contract/api'
import { expandSweep, sweepProblem, type SweepValue } from '@contract/sweep'
import { getApi } from '../bridge'
import { evalSetting, evalSettings, type SizeAxis } from '../lib/compare-points'
import { compressSpec } from '../lib/compress-results'
import { useCompressStore } from './compress'
import { useCompressRunStore } from './compress-run'
import { messageOf, useErrorStore } from './errors'
import { failureOf } from './inspect'
import { isTerminal, useJobStore } from './jobs'
import { useModelStore } from './model'

/** "2, 3, 4, 8" → [2, 3, 4, 8]; words stay strings, true/false become booleans. */
export function parseSweepValues(text: string): SweepValue[] {
  return text
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map((t) => {
      if (t === 'true' || t === 'false') return t === 'true'
      const n = Number(t)
      return Number.isFinite(n) ? n : t
    })
}

export const useCompareStore = defineStore('compare', () => {
  const model = useModelStore()
  const jobs = useJobStore()
  const errors = useErrorStore()
  const compress = useCompressStore()
  const compressRun = useCompressRunStore()

  const points = shallowRef<ResultPoint[]>([])
  const loading = ref(false)
  const setting = ref<string | null>(null)
  const axis = ref<SizeAxis>('bitsPerWeight')
  /** Up to two picked results: the first is shown in detail; both are compared tensor by tensor. */
  const picked = ref<string[]>([])

  const sweepStep = ref(1)
  const sweepParam = ref('bits')
  const sweepValues = ref('2, 3, 4, 8')
  const sweeping = ref(false)
  const sweepNote = ref<string | null>(null)
  const sweepJob = ref<JobId | null>(null)
  let stopSweep = false

  const settings = computed(() => evalSettings(points.value))
  const shown = computed(() => {
    const key = setting.value ?? settings.value[0]?.key ?? null
    return key === null ? [] : points.value.filter((p) => evalSetting(p) === key)
  })
  const pickedPoints = computed(() =>
    picked.value.map((id) => points.value.find((p) => p.id === id)).filter((p): p is ResultPoint => !!p),
  )

  async function refresh(): Promise<void> {
    const id = model.summary?.id
    if (!id) {
      points.value = []
      return
    }
    loading.value = true
    try {
      points.value = await getApi().listResults({ modelId: id })
      if (setting.value && !settings.value.some((s) => s.key === setting.value)) setting.value = null
    } catch (e) {
      errors.report(e)
    } finally {
      loading.value = false
    }
  }

  /** A click on a point: the first pick shows its details; a second is compared with it; a third replaces the second. */
  function pick(id: string): void {
    if (picked.value.includes(id)) picked.value = picked.value.filter((p) => p !== id)
    else picked.value = picked.value.length < 2 ? [...picked.value, id] : [picked.value[0], id]
  }

  function sweepRecipes(): { value: SweepValue; recipe: RecipeDoc }[] {
    const sweep = { step: sweepStep.value, param: sweepParam.value.trim(), values: parseSweepValues(sweepValues.value) }
    const problem = sweepProblem(sweep, compress.recipe.steps.length)
    if (problem) throw new Error(`sweep ${problem}`)
    return expandSweep({ ...compress.recipe, sweep })
  }

  /** Runs the Compress tab's recipe once per value, one after the other; each result joins the chart. */
  async function runSweep(): Promise<void> {
    const summary = model.summary
    if (!summary || sweeping.value) return
    let runs: { value: SweepValue; recipe: RecipeDoc }[]
    try {
      runs = sweepRecipes()
      for (const r of runs) await getApi().checkRecipe({ recipe: r.recipe })
    } catch (e) {
      sweepNote.value = messageOf(e)
      return
    }
    sweeping.value = true
    stopSweep = false
    try {
      for (const [i, r] of runs.entries()) {
        if (stopSweep || model.summary?.id !== summary.id) break
        sweepNote.value = `run ${i + 1} of ${runs.length}: ${sweepParam.value} = ${String(r.value)}`
        const id = await jobs.start(compressSpec(summary.id, r.recipe, compressRun.form))
        sweepJob.value = id
        const end = await jobs.whenFinished(id)
        sweepJob.value = null
        if (end.state !== 'done') {
          sweepNote.value = `stopped at ${sweepParam.value} = ${String(r.value)}: ${failureOf(end)}`
          break
        }
        await refresh()
      }
      if (!stopSweep && sweepNote.value?.startsWith('run ')) sweepNote.value = `done: ${runs.length} runs`
    } catch (e) {
      sweepNote.value = messageOf(e)
      errors.report(e)
    } finally {
      sweeping.value = false
    }
  }

  async function cancelSweep(): Promise<void> {
    stopSweep = true
    const id = sweepJob.value
    const u = id ? jobs.get(id) : undefined
    if (id && (!u || !isTerminal(u.state))) await jobs.cancel(id).catch((e) => errors.report(e))
    sweepNote.value = 'cancelled'
  }

  watch(
    () => model.summary?.id,
    () => {
      picked.value = []
      setting.value = null
      void refresh()
    },
  )
  // A compress run that just finished is a new point.
  watch(
    () => compressRun.result,
    () => void refresh(),
  )

  return {
    points,
    loading,
    setting,
    axis,
    picked,
    settings,
    shown,
    pickedPoints,
    sweepStep,
    sweepParam,
    sweepValues,
    sweeping,
    sweepNote,
    sweepJob,
    refresh,
    pick,
    runSweep,
    cancelSweep,
  }
})
