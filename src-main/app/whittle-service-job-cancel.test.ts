// Cancel through the service's job API lands within a second on each kind of long job: perplexity,
// calibration capture (the activation report), the head and layer probes, and a GPTQ compression.
// Each job is sized to run for several seconds on the demo model, cancelled once it is under way, and
// must end 'cancelled' (not 'done') within 1 s × WHITTLE_TEST_TIME_FACTOR of the cancel.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobSpec, JobUpdate, ModelSummary } from '../contract/api'
import { closeSharedPool } from '../engine/pool/worker-pool'
import { scaled } from '../engine/testing/time-factor'
import type { WhittleService } from './whittle-service'
import { call, demoService } from './testing/service-harness'

const root = path.resolve(__dirname, '../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cancel-'))
/** A slice of the bundled eval text: tokenizes in a few seconds, yet gives tens of seconds of windows. */
const evalText = path.join(tmp, 'eval-slice.txt')
let service: WhittleService
let demo: ModelSummary

beforeAll(async () => {
  service = demoService(tmp)
  demo = await call<ModelSummary>(service, 'openDemo', {})
  const full = readFileSync(path.join(root, 'resources/text/tinystories_eval.txt'), 'utf8')
  writeFileSync(evalText, full.slice(0, full.indexOf('\n\n', 150_000)))
})
afterAll(async () => {
  await closeSharedPool()
  rmSync(tmp, { recursive: true, force: true })
})

/**
 * Starts the job, waits until it reports progress past `underWay` (its long part has begun), cancels it,
 * and returns its last update and the time from cancel to that update.
 */
async function cancelUnderWay(
  spec: JobSpec,
  underWay: (u: JobUpdate) => boolean,
): Promise<{ end: JobUpdate; latencyMs: number; cancelled: boolean }> {
  const id = await call<string>(service, 'startJob', spec)
  let cancelledAt = 0
  let cancelled = false
  return new Promise((resolve) => {
    const stop = service.onJob((u) => {
      if (u.id !== id) return
      if (['done', 'error', 'cancelled'].includes(u.state)) {
        stop()
        resolve({ end: u, latencyMs: performance.now() - cancelledAt, cancelled })
      } else if (!cancelled && underWay(u)) {
        cancelled = true
        cancelledAt = performance.now()
        void call(service, 'cancelJob', { id })
      }
    })
  })
}

/** Enough windows that each layer of a probe takes a while, few enough to keep the whole file short. */
const calibration = { samples: 64, seqlen: 256 }

describe('cancel through the job API', () => {
  const cases: [string, () => JobSpec, (u: JobUpdate) => boolean][] = [
    [
      'perplexity',
      () => ({ kind: 'perplexity', modelId: demo.id, text: evalText, seqlen: 256 }),
      (u) => u.progress > 0.02,
    ],
    [
      'activations (calibration capture)',
      () => ({ kind: 'activations', modelId: demo.id, calibration }),
      (u) => u.progress > 0,
    ],
    ['layer importance', () => ({ kind: 'layers', modelId: demo.id, calibration }), (u) => u.progress > 0],
    ['head importance', () => ({ kind: 'heads', modelId: demo.id, calibration }), (u) => u.progress > 0],
    [
      'compress with GPTQ',
      () => ({
        kind: 'compress',
        modelId: demo.id,
        evalText,
        seqlen: 256,
        maxEvalWindows: 4,
        recipe: { calibration, steps: [{ method: 'gptq', params: { bits: 4 } }] },
      }),
      (u) => /gptq/.test(u.message),
    ],
  ]
  for (const [label, spec, underWay] of cases) {
    it(`${label}: cancelled within 1 s once under way`, async () => {
      const r = await cancelUnderWay(spec(), underWay)
      expect(
        r.cancelled,
        `the job ended (${r.end.state}: ${r.end.error ?? r.end.message}) before it could be cancelled`,
      ).toBe(true)
      expect(r.end.state, r.end.error).toBe('cancelled')
      expect(r.latencyMs).toBeLessThan(scaled(1000))
    })
  }
})
