// A recovery (distill) compress job on the demo model, through the service's job API: its updates carry
// every training step exactly once, in order, with loss = α·T²·KL + (1 − α)·CE, tokens/s and an ETA
// that reaches 0, and the evals of eval_every; pauseJob holds it between steps (no step arrives while it
// is paused) and resumeJob lets it finish.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobUpdate, ModelSummary, TrainingEvalPoint, TrainingStepPoint } from '../contract/api'
import { closeSharedPool } from '../engine/pool/worker-pool'
import { scaled } from '../engine/testing/time-factor'
import type { WhittleService } from './whittle-service'
import { call, demoService } from './testing/service-harness'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-training-progress-'))
const evalText = path.join(tmp, 'eval-slice.txt')
let service: WhittleService
let demo: ModelSummary

beforeAll(async () => {
  service = demoService(tmp)
  demo = await call<ModelSummary>(service, 'openDemo', {})
  const full = readFileSync(path.join(root, 'resources/text/tinystories_eval.txt'), 'utf8')
  writeFileSync(evalText, full.slice(0, full.indexOf('\n\n', 20_000)))
})
afterAll(async () => {
  await closeSharedPool()
  rmSync(tmp, { recursive: true, force: true })
})

const STEPS = 30
const EVAL_EVERY = 10
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('training progress through the job API', () => {
  it('carries every step and eval, and pause holds the training until resume', async () => {
    const steps: TrainingStepPoint[] = []
    const evals: TrainingEvalPoint[] = []
    let totalSteps = 0
    let pausedSeen = false
    let end: JobUpdate | null = null
    const finished = new Promise<void>((resolve) => {
      service.onJob((u) => {
        if (u.training) {
          totalSteps = u.training.totalSteps
          steps.push(...u.training.steps)
          evals.push(...u.training.evals)
        }
        if (u.paused) pausedSeen = true
        if (['done', 'error', 'cancelled'].includes(u.state)) {
          end = u
          resolve()
        }
      })
    })
    const id = await call<string>(service, 'startJob', {
      kind: 'compress',
      modelId: demo.id,
      evalText,
      seqlen: 64,
      maxEvalWindows: 4,
      recipe: {
        calibration: { samples: 16, seqlen: 64, seed: 0 },
        steps: [
          {
            method: 'distill',
            params: {
              steps: STEPS,
              batch_size: 2,
              seqlen: 64,
              lr: 0.001,
              eval_every: EVAL_EVERY,
              eval_text: evalText,
              eval_windows: 2,
            },
          },
        ],
      },
    })
    // Pause as soon as the first step has arrived.
    const deadline = performance.now() + scaled(60_000)
    while (steps.length === 0 && !end && performance.now() < deadline) await sleep(5)
    expect(steps.length, 'no training step arrived').toBeGreaterThan(0)
    await call(service, 'pauseJob', { id })
    // Steps already under way when the pause landed still arrive; after that, nothing until resume.
    await sleep(scaled(500))
    const atPause = steps.length
    await sleep(scaled(1000))
    expect(steps.length, 'a step ran while the job was paused').toBe(atPause)
    expect(atPause).toBeLessThan(STEPS)
    expect(pausedSeen).toBe(true)
    await expect(service.handle('resumeJob', { id })).resolves.toMatchObject({ ok: true })
    await finished
    const last = end as JobUpdate | null
    expect(last?.state, last?.error).toBe('done')
    expect(last?.paused).toBeFalsy()

    expect(totalSteps).toBe(STEPS)
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1))
    for (const s of steps) {
      // distill's defaults: T = 2, α = 0.5
      expect(s.loss).toBeCloseTo(0.5 * 4 * s.kl + 0.5 * s.ce, 5)
      expect(s.ce).toBeGreaterThan(0)
      expect(s.kl).toBeGreaterThanOrEqual(0)
      expect(s.tokensPerSecond).toBeGreaterThan(0)
      expect(s.etaSeconds).toBeGreaterThanOrEqual(0)
    }
    expect(steps[STEPS - 1].etaSeconds).toBe(0)
    expect(evals.map((e) => e.step)).toEqual(Array.from({ length: STEPS / EVAL_EVERY }, (_, i) => (i + 1) * EVAL_EVERY))
    for (const e of evals) expect(Number.isFinite(e.ppl) && e.ppl > 1).toBe(true)
  })
})
