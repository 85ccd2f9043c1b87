// Training points through the registry: progress updates are rate-limited, yet every step and eval a
// runner reports reaches the listeners exactly once, in order (batched into fewer updates), the last
// ones with the final update; pause and resume are announced at once and hold the runner's gate.

import { describe, expect, it } from 'vitest'
import type { JobUpdate, TrainingStepPoint } from '../../contract/api'
import { JobRegistry } from './job-registry'
import { waitWhilePaused } from './job-controls'

const point = (step: number): TrainingStepPoint => ({
  step,
  loss: 1 / step,
  ce: 1 / step,
  kl: 0,
  tokensPerSecond: 100,
  etaSeconds: 50 - step,
})
const scan = { modelId: 'm', k: 6, cells: [], seconds: 0, bytes: 0 }

describe('JobRegistry training progress', () => {
  it('delivers every training point once, in order, though updates are rate-limited', async () => {
    const jobs = new JobRegistry()
    const seen: JobUpdate[] = []
    jobs.onUpdate((u) => seen.push(u))
    const { done } = jobs.start('scan', async (ctx) => {
      for (let s = 1; s <= 50; s++) {
        ctx.progress(s / 50, `step ${s}`, {
          totalSteps: 50,
          steps: [point(s)],
          evals: s % 10 === 0 ? [{ step: s, ppl: 10 - s / 10 }] : [],
        })
        if (s % 5 === 0) await new Promise((r) => setTimeout(r, 30))
      }
      return { kind: 'scan', result: scan }
    })
    await done
    const withTraining = seen.filter((u) => u.training)
    // Batched: fewer updates than steps (50 steps in ~300 ms under a 100 ms limit).
    expect(withTraining.length).toBeLessThan(50)
    expect(seen.flatMap((u) => u.training?.steps ?? []).map((p) => p.step)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1),
    )
    expect(seen.flatMap((u) => u.training?.evals ?? []).map((e) => e.step)).toEqual([10, 20, 30, 40, 50])
    expect(seen.at(-1)?.state).toBe('done')
  })

  it('announces pause and resume at once, and the runner waits on its gate in between', async () => {
    const jobs = new JobRegistry()
    const seen: JobUpdate[] = []
    jobs.onUpdate((u) => seen.push(u))
    let passed = 0
    let release!: () => void
    const started = new Promise<void>((r) => (release = r))
    const { id, done } = jobs.start('scan', async () => {
      release()
      await new Promise((r) => setTimeout(r, 10))
      await waitWhilePaused()
      passed++
      return { kind: 'scan', result: scan }
    })
    await started
    expect(jobs.pause(id)).toBe(true)
    expect(seen.at(-1)?.paused).toBe(true)
    await new Promise((r) => setTimeout(r, 100))
    expect(passed).toBe(0)
    expect(jobs.resume(id)).toBe(true)
    expect(seen.at(-1)?.paused).toBe(false)
    const final = await done
    expect(passed).toBe(1)
    expect(final.state).toBe('done')
    expect(final.paused).toBeFalsy()
    expect(jobs.pause(id)).toBe(false)
  })

  it('a paused job can still be cancelled', async () => {
    const jobs = new JobRegistry()
    const { id, done } = jobs.start('scan', async () => {
      await new Promise((r) => setTimeout(r, 10))
      await waitWhilePaused()
      return { kind: 'scan', result: scan }
    })
    jobs.pause(id)
    await new Promise((r) => setTimeout(r, 50))
    expect(jobs.cancel(id)).toBe(true)
    expect((await done).state).toBe('cancelled')
  })
})
