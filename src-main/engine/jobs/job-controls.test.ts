// The pause gate holds a waiter until resume, lets an unpaused one through at once and ends a paused
// one with the cancelled error when its job is cancelled; the scopes reach code started inside them.

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import {
  currentTrainingReporter,
  PauseGate,
  waitWhilePaused,
  withPauseGate,
  withTrainingReporter,
  type TrainingReporter,
} from './job-controls'

/** Whether `p` settles within a few turns of the event loop. */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false
  p.then(
    () => (done = true),
    () => (done = true),
  )
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setTimeout(r, 5))
  return done
}

describe('PauseGate', () => {
  it('lets a waiter through at once when not paused', async () => {
    expect(await settles(new PauseGate().wait())).toBe(true)
  })

  it('holds a waiter while paused and releases it on resume', async () => {
    const gate = new PauseGate()
    gate.pause()
    expect(gate.paused).toBe(true)
    const waiting = gate.wait()
    expect(await settles(waiting)).toBe(false)
    gate.resume()
    expect(gate.paused).toBe(false)
    expect(await settles(waiting)).toBe(true)
  })

  it('ends a paused wait with the cancelled error when the job is cancelled', async () => {
    const gate = new PauseGate()
    const controller = new AbortController()
    gate.pause()
    const waiting = gate.wait(controller.signal)
    const outcome = waiting.then(
      () => null,
      (e: unknown) => e,
    )
    controller.abort()
    const e = await outcome
    expect(e).toBeInstanceOf(WhittleError)
    expect((e as WhittleError).code).toBe('cancelled')
  })
})

describe('job scopes', () => {
  it('waitWhilePaused waits on the gate of the job it runs in, and never outside a job', async () => {
    expect(await settles(waitWhilePaused())).toBe(true)
    const gate = new PauseGate()
    gate.pause()
    const waiting = withPauseGate(gate, async () => {
      await new Promise<void>((r) => setTimeout(r, 1)) // still inside the scope after an await
      await waitWhilePaused()
    })
    expect(await settles(waiting)).toBe(false)
    gate.resume()
    expect(await settles(waiting)).toBe(true)
  })

  it('the training reporter reaches code started inside its scope only', async () => {
    const seen: number[] = []
    const reporter: TrainingReporter = { step: (p) => seen.push(p.step), eval: () => undefined }
    expect(currentTrainingReporter()).toBeUndefined()
    await withTrainingReporter(reporter, async () => {
      await Promise.resolve()
      currentTrainingReporter()?.step({ step: 3, loss: 1, ce: 1, kl: 0, tokensPerSecond: 1, etaSeconds: 0 }, 5)
    })
    expect(seen).toEqual([3])
    expect(currentTrainingReporter()).toBeUndefined()
  })
})
