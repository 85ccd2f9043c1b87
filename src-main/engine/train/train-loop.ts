// The training loop: windows of the training text in a fixed or seeded order, micro-batches whose
// gradients add up to one optimizer step, masking of pruned entries, clipping, AdamW, progress and cancel.
//
// Windows: window k is ids[k·seqlen, (k + 1)·seqlen) for k < n = floor(len / seqlen). Step s uses the
// windows at positions (batch·s + j) mod n, j < batch, of the order: 0, 1, 2, … ('sequential', the
// reference protocol), or a seeded permutation drawn anew for every pass over the text ('shuffled').
// The loss of a step is averaged over all its next-token predictions (batch · (seqlen − 1)).

import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'
import { currentTrainingReporter, waitWhilePaused } from '../jobs/job-controls'
import { AdamW, clipGradNorm, learningRate, type AdamWSettings, type ScheduleName } from './adamw'
import type { LlamaTrainer } from './llama-trainer'
import { seededRandom } from './seeded-random'

export type WindowOrder = 'sequential' | 'shuffled'

export interface TrainSettings {
  steps: number
  batchSize: number
  /** Windows per forward/backward call; the step's gradient is their sum. Default: batchSize. */
  microBatch?: number
  order: WindowOrder
  seed: number
  lr: number
  schedule: ScheduleName
  warmupSteps: number
  optimizer: AdamWSettings
  /** Clip the global gradient norm to this; 0 = no clipping. */
  maxGradNorm: number
}

export interface StepReport {
  step: number
  loss: number
  ce: number
  kl: number
  lr: number
  gradNorm: number
  /** Tokens trained on so far (windows × seqlen). */
  tokens: number
  tokensPerSecond: number
  seconds: number
}

export interface TrainResult {
  first: StepReport | null
  last: StepReport | null
  steps: StepReport[]
  tokens: number
  seconds: number
  /** Kernel-memory bytes held during training (weights, gradients, optimizer state, buffers). */
  peakKernelBytes: number
  optimizerBytes: number
}

export interface TrainHooks {
  signal?: AbortSignal
  onStep?: (r: StepReport) => void | Promise<void>
}

/** Which window each position of the training order refers to. */
export class WindowSchedule {
  private readonly perms = new Map<number, Uint32Array>()

  constructor(
    readonly count: number,
    private readonly order: WindowOrder,
    private readonly seed: number,
  ) {
    if (count < 1) throw new WhittleError('validation', null, 'the training text holds no whole window')
  }

  /** The window at position i of the training order (i ≥ 0). */
  at(i: number): number {
    const k = i % this.count
    if (this.order === 'sequential') return k
    const epoch = Math.floor(i / this.count)
    let p = this.perms.get(epoch)
    if (!p) {
      p = Uint32Array.from({ length: this.count }, (_, j) => j)
      const r = seededRandom(this.seed * 1000003 + epoch)
      for (let j = this.count - 1; j > 0; j--) {
        const x = Math.floor(r() * (j + 1))
        const t = p[j]
        p[j] = p[x]
        p[x] = t
      }
      this.perms.clear() // only the current pass is ever asked for again
      this.perms.set(epoch, p)
    }
    return p[k]
  }
}

export function checkTrainSettings(s: TrainSettings): void {
  const bad = (what: string): never => {
    throw new WhittleError('validation', null, `training: ${what}`)
  }
  if (!Number.isInteger(s.steps) || s.steps < 1) bad(`steps must be a positive integer (got ${s.steps})`)
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1)
    bad(`batch_size must be a positive integer (got ${s.batchSize})`)
  const mb = s.microBatch ?? s.batchSize
  if (!Number.isInteger(mb) || mb < 1 || mb > s.batchSize)
    bad(`micro_batch must be an integer in [1, batch_size] (got ${mb})`)
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) bad(`lr must be a positive number (got ${s.lr})`)
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0)
    bad(`warmup_steps must be a non-negative integer (got ${s.warmupSteps})`)
  if (!(s.maxGradNorm >= 0)) bad(`max_grad_norm must be ≥ 0 (got ${s.maxGradNorm})`)
}

/** Trains the trainer's block Linears in place for `settings.steps` optimizer steps on `ids`. */
export async function train(
  trainer: LlamaTrainer,
  ids: Int32Array,
  settings: TrainSettings,
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  checkTrainSettings(settings)
  const T = trainer.seqlen
  const windows = new WindowSchedule(Math.floor(ids.length / T), settings.order, settings.seed)
  const B = settings.batchSize,
    micro = settings.microBatch ?? B
  const optimizer = new AdamW(trainer.pool, trainer.params, settings.optimizer)
  const reports: StepReport[] = []
  const started = performance.now()
  let tokens = 0
  let peak = trainer.measuredBytes()
  let pausedSeconds = 0
  const reporter = currentTrainingReporter()
  try {
    for (let s = 0; s < settings.steps; s++) {
      // A paused job waits here, between optimizer steps, with no kernel call in flight; its pause
      // time does not count into tokens/s.
      const pausedAt = performance.now()
      await waitWhilePaused(hooks.signal)
      pausedSeconds += (performance.now() - pausedAt) / 1000
      throwIfCancelled(hooks.signal)
      const keys = Array.from({ length: B }, (_, j) => windows.at(B * s + j))
      const batch = keys.map((k) => ids.subarray(k * T, (k + 1) * T))
      const predictions = B * (T - 1)
      trainer.zeroGrads()
      let ce = 0,
        kl = 0
      for (let m0 = 0; m0 < B; m0 += micro) {
        const sums = await trainer.accumulate(
          batch.slice(m0, m0 + micro),
          1 / predictions,
          hooks.signal,
          keys.slice(m0, m0 + micro),
        )
        ce += sums.ce
        kl += sums.kl
      }
      peak = Math.max(peak, trainer.peakBytes, trainer.measuredBytes())
      trainer.maskGrads()
      const gradNorm = clipGradNorm(trainer.params, settings.maxGradNorm)
      const lr = learningRate(settings.lr, settings.schedule, s, settings.steps, settings.warmupSteps)
      optimizer.step(lr)
      tokens += B * T
      const seconds = (performance.now() - started) / 1000 - pausedSeconds
      const ceMean = ce / predictions,
        klMean = kl / predictions
      const a = trainer.loss.alpha,
        temp = trainer.loss.temperature
      const report: StepReport = {
        step: s,
        ce: ceMean,
        kl: klMean,
        loss: a * temp * temp * klMean + (1 - a) * ceMean,
        lr,
        gradNorm,
        tokens,
        tokensPerSecond: tokens / Math.max(seconds, 1e-9),
        seconds,
      }
      reports.push(report)
      reporter?.step(
        {
          step: s + 1,
          loss: report.loss,
          ce: report.ce,
          kl: report.kl,
          tokensPerSecond: report.tokensPerSecond,
          etaSeconds: ((settings.steps - s - 1) * B * T) / Math.max(report.tokensPerSecond, 1e-9),
        },
        settings.steps,
      )
      await hooks.onStep?.(report)
    }
    return {
      first: reports[0] ?? null,
      last: reports[reports.length - 1] ?? null,
      steps: reports,
      tokens,
      seconds: (performance.now() - started) / 1000 - pausedSeconds,
      peakKernelBytes: peak,
      optimizerBytes: optimizer.stateBytes,
    }
  } finally {
    optimizer.free()
  }
}
