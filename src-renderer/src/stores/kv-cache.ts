// The KV-cache analysis of the open model: its form, its running job and its last result, dropped when
// another model opens.

import { defineStore } from 'pinia'
import { markRaw, reactive, shallowReactive, watch } from 'vue'
import type { JobId, KvCacheAnalysis } from '@contract/api'
import { jobResult } from '@contract/job-result'
import { DEFAULT_KV_FORM, kvCacheSpec, type KvCacheForm } from '../lib/kv-cache-request'
import { messageOf, useErrorStore } from './errors'
import { failureOf } from './inspect'
import { isTerminal, useJobStore } from './jobs'
import { useModelStore } from './model'

export const useKvCacheStore = defineStore('kv-cache', () => {
  const model = useModelStore()
  const jobs = useJobStore()
  const errors = useErrorStore()
  const form = reactive<KvCacheForm>({ ...DEFAULT_KV_FORM })
  const slot = shallowReactive({
    result: null as KvCacheAnalysis | null,
    jobId: null as JobId | null,
    running: false,
    failure: null as string | null,
    cancelled: false,
  })
  /** Bumped per run and per model: only the newest run installs its result. */
  let ticket = 0

  async function run(): Promise<void> {
    const summary = model.summary
    if (!summary) return
    await cancel()
    const mine = ++ticket
    Object.assign(slot, { failure: null, cancelled: false, jobId: null, running: true })
    let id: JobId
    try {
      id = await jobs.start(kvCacheSpec(summary.id, form))
    } catch (e) {
      if (mine === ticket) Object.assign(slot, { running: false, failure: messageOf(e) })
      errors.report(e)
      return
    }
    if (mine !== ticket) return void jobs.cancel(id).catch(() => undefined)
    slot.jobId = id
    const end = await jobs.whenFinished(id)
    if (mine !== ticket) return
    slot.jobId = null
    slot.running = false
    const result = jobResult(end, 'kv-cache')
    if (result) {
      slot.result = markRaw(result)
      return
    }
    slot.failure = end.state === 'done' ? 'the engine sent no KV-cache result' : failureOf(end)
    slot.cancelled = end.state === 'cancelled'
    if (end.state !== 'cancelled') errors.report(slot.failure)
  }

  async function cancel(): Promise<void> {
    const id = slot.jobId
    const u = id ? jobs.get(id) : undefined
    if (id && (!u || !isTerminal(u.state))) await jobs.cancel(id).catch((e) => errors.report(e))
  }

  watch(
    () => model.summary?.id,
    () => {
      void cancel()
      ticket++
      Object.assign(slot, { result: null, jobId: null, running: false, failure: null, cancelled: false })
    },
  )

  return { form, slot, run, cancel }
})
