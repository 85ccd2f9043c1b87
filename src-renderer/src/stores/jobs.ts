// Long work as the engine reports it: every job update by id, start and cancel, and a promise for a
// job's end. Updates can arrive before startJob's answer (the engine announces a job as it starts),
// so they are recorded for every id and matched up afterwards. Updates are pushed, and a push can be
// lost (a WebSocket that dropped and reconnected mid-job): while jobs run, the store also asks the
// engine for their status now and then, so a lost end never leaves a view waiting forever.

import { defineStore } from 'pinia'
import { computed, markRaw, shallowReactive } from 'vue'
import type { JobId, JobSpec, JobState, JobUpdate } from '@contract/api'
import { getApi } from '../bridge'
import { baseName } from '../lib/analysis-requests'

export function isTerminal(state: JobState): boolean {
  return state === 'done' || state === 'error' || state === 'cancelled'
}

/** What a job is about, in a few words, for the job bar. */
export function subjectOf(spec: JobSpec): string {
  switch (spec.kind) {
    case 'tensor':
      return spec.name
    case 'perplexity': {
      const text = spec.text ? baseName(spec.text) : 'bundled eval text'
      return `${text} · seqlen ${spec.seqlen ?? 256}`
    }
    case 'kv-cache':
      return `KV cache · ${spec.settings?.length ?? 'default'} settings · seqlen ${spec.seqlen ?? 256}`
    case 'activations':
    case 'heads':
    case 'layers': {
      const c = spec.calibration
      return c?.samples && c.seqlen ? `calibration ${c.samples} × ${c.seqlen}` : 'calibration text'
    }
    case 'compress': {
      const methods = spec.recipe.steps.map((s) => s.method).join(' → ')
      return `${methods || 'recipe'} · eval seqlen ${spec.seqlen ?? 256}`
    }
    case 'export':
      return `${spec.format}${spec.ggufType ? ` ${spec.ggufType}` : ''} → ${baseName(spec.out)}`
    default:
      return 'whole model'
  }
}

/** Finished jobs kept for late readers; older ones are forgotten. */
const KEEP_FINISHED = 50
/** After a cancel request, how long to wait for the engine's own 'cancelled' before assuming it. */
const CANCEL_GRACE_MS = 5000
/** How often running jobs' status is asked for, in case a pushed update was lost. */
export const STATUS_POLL_MS = 3000

export const useJobStore = defineStore('jobs', () => {
  // Results can be large (a whole-model scan): keep them out of deep reactivity.
  const updates = shallowReactive(new Map<JobId, JobUpdate>())
  const dismissed = shallowReactive(new Set<JobId>())
  /** What each job started here is about (updates carry no tensor name once they end). */
  const subjects = shallowReactive(new Map<JobId, string>())
  const waiters = new Map<JobId, ((u: JobUpdate) => void)[]>()

  function apply(update: JobUpdate): void {
    const previous = updates.get(update.id)
    // A late progress event must not resurrect a job that already ended.
    if (previous && isTerminal(previous.state) && !isTerminal(update.state)) return
    updates.set(update.id, markRaw(update))
    if (isTerminal(update.state)) {
      const waiting = waiters.get(update.id) ?? []
      waiters.delete(update.id)
      for (const resolve of waiting) resolve(update)
      forgetOld()
    } else schedulePoll()
  }

  let pollTimer: ReturnType<typeof setTimeout> | null = null

  function schedulePoll(): void {
    if (pollTimer === null) pollTimer = setTimeout(() => void poll(), STATUS_POLL_MS)
  }

  /** Asks the engine about every job still running here; a lost end is applied as if it had arrived. */
  async function poll(): Promise<void> {
    const open = [...updates.values()].filter((u) => !isTerminal(u.state))
    await Promise.all(
      open.map(async (mine) => {
        let theirs: JobUpdate | null
        try {
          theirs = await getApi().jobStatus({ id: mine.id })
        } catch {
          return // Not connected just now: ask again next time.
        }
        if (theirs) apply(theirs)
        else {
          const current = updates.get(mine.id)
          if (current && !isTerminal(current.state))
            apply({
              ...current,
              state: 'error',
              message: 'the engine no longer knows this job (was it restarted?)',
              error: 'the engine no longer knows this job (was it restarted?)',
            })
        }
      }),
    )
    pollTimer = null
    if ([...updates.values()].some((u) => !isTerminal(u.state))) schedulePoll()
  }

  function forgetOld(): void {
    const finished = [...updates.values()].filter((u) => isTerminal(u.state))
    for (const u of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) {
      updates.delete(u.id)
      dismissed.delete(u.id)
      subjects.delete(u.id)
    }
  }

  // One subscription for the life of the app.
  getApi().onJob(apply)

  async function start(spec: JobSpec): Promise<JobId> {
    const id = await getApi().startJob(spec)
    subjects.set(id, subjectOf(spec))
    if (!updates.has(id)) {
      apply({ id, kind: spec.kind, state: 'queued', progress: 0, message: 'queued' })
    }
    return id
  }

  async function cancel(id: JobId): Promise<void> {
    await getApi().cancelJob({ id })
    setTimeout(() => {
      const u = updates.get(id)
      if (u && !isTerminal(u.state))
        apply({ ...u, state: 'cancelled', message: 'cancelled (the engine did not confirm)' })
    }, CANCEL_GRACE_MS)
  }

  /** Resolves with the job's final update (done, error or cancelled); never rejects. */
  function whenFinished(id: JobId): Promise<JobUpdate> {
    const u = updates.get(id)
    if (u && isTerminal(u.state)) return Promise.resolve(u)
    return new Promise((resolve) => {
      const list = waiters.get(id)
      if (list) list.push(resolve)
      else waiters.set(id, [resolve])
    })
  }

  function dismiss(id: JobId): void {
    dismissed.add(id)
  }

  /** What the job bar shows: running jobs, and failed or cancelled ones until dismissed. */
  const visible = computed<JobUpdate[]>(() =>
    [...updates.values()].filter((u) => !isTerminal(u.state) || (u.state !== 'done' && !dismissed.has(u.id))),
  )
  const running = computed<JobUpdate[]>(() => [...updates.values()].filter((u) => !isTerminal(u.state)))

  return {
    updates,
    subjects,
    visible,
    running,
    start,
    cancel,
    whenFinished,
    dismiss,
    get: (id: JobId): JobUpdate | undefined => updates.get(id),
  }
})
