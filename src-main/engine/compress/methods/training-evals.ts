// Perplexity during training and the best checkpoint, shared by every training step (distill, lora):
// eval_every measures perplexity on eval_text every N steps and after the last one; with keep_best (on by
// default then) the trained values at the best eval perplexity become the step's result, as TRL's
// load_best_model_at_end. The parameters are declared here once and spread into each step's spec.

import { boolParam, intParam, stringParam, type ParamSpec } from '../../../contract/method-params'
import { perplexity } from '../../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import { currentTrainingReporter } from '../../jobs/job-controls'
import { withReplacements, type ModelView } from '../../model/model-view'
import type { WorkerPool } from '../../pool/worker-pool'
import type { ParamReader } from './params'

export const TRAINING_EVAL_PARAMS: ParamSpec[] = [
  intParam('eval_every', 0, 0, 10_000_000, 'Perplexity on eval_text every this many steps (0 = never)'),
  stringParam('eval_text', 'Text to measure perplexity on during training'),
  intParam('eval_windows', 0, 0, 1 << 24, 'Evaluate on the first this many windows of eval_text only (0 = all)'),
  boolParam('keep_best', true, 'With eval_every: the weights at the best eval perplexity are the result'),
]

export interface TrainingEvalSettings {
  /** Perplexity on evalText every this many steps (0 = never). */
  evalEvery: number
  evalText: string | undefined
  /** Evaluate on the first this many windows of evalText only (0 = all). */
  evalWindows: number
  /** With evalEvery > 0: the weights at the best eval perplexity are the result. */
  keepBest: boolean
}

/** Reads TRAINING_EVAL_PARAMS (call before r.done()). */
export function readTrainingEvalSettings(r: ParamReader): TrainingEvalSettings {
  const s: TrainingEvalSettings = {
    evalEvery: r.int('eval_every'),
    evalText: r.optString('eval_text'),
    evalWindows: r.int('eval_windows'),
    keepBest: r.bool('keep_best'),
  }
  if (s.evalEvery > 0 && !s.evalText) r.fail('eval_every', 'needs eval_text (the text to measure perplexity on)')
  if (r.given('keep_best') && s.keepBest && s.evalEvery === 0)
    r.fail('keep_best', 'needs eval_every (the best checkpoint is chosen by eval perplexity)')
  return s
}

/** What the trainer offers a checkpoint: a copy of its trained values, and putting one back. */
export interface CheckpointableTrainer {
  snapshotParams(): Float32Array[]
  restoreParams(saved: readonly Float32Array[]): void
}

export interface TrainingEvalHooks {
  pool: WorkerPool
  signal?: AbortSignal
  seqlen: number
  totalSteps: number
  onProgress?: (fraction: number, message: string) => void
}

/** Runs the evals of one training step and keeps the best checkpoint. */
export class TrainingEvals {
  readonly evals: { step: number; ppl: number }[] = []
  private best: { step: number; ppl: number; params: Float32Array[] } | null = null

  private constructor(
    private readonly settings: TrainingEvalSettings,
    private readonly ids: Int32Array | null,
    private readonly hooks: TrainingEvalHooks,
  ) {}

  static async create(
    view: ModelView,
    settings: TrainingEvalSettings,
    hooks: TrainingEvalHooks,
  ): Promise<TrainingEvals> {
    const ids =
      settings.evalEvery > 0 && settings.evalText
        ? await tokenizeForEval(view.files, await readTextFile(settings.evalText))
        : null
    return new TrainingEvals(settings, ids, hooks)
  }

  /**
   * After optimizer step `step` (0-based): when an eval is due, measures the perplexity of `view` with
   * `trained()` (the trained tensors as they stand) in place, reports it, and keeps a checkpoint if best.
   */
  async afterStep(
    step: number,
    view: ModelView,
    trained: () => Map<string, Float32Array>,
    trainer: CheckpointableTrainer,
  ): Promise<void> {
    const done = step + 1
    if (!this.ids || (done % this.settings.evalEvery !== 0 && done !== this.hooks.totalSteps)) return
    const probe = withReplacements(view)
    for (const [name, w] of trained()) probe.replace(name, w)
    const { ppl } = await perplexity(this.hooks.pool, probe, this.ids, {
      seqlen: this.hooks.seqlen,
      signal: this.hooks.signal,
      maxWindows: this.settings.evalWindows || undefined,
    })
    this.evals.push({ step: done, ppl })
    if (this.settings.keepBest && !(this.best && this.best.ppl <= ppl))
      this.best = { step: done, ppl, params: trainer.snapshotParams() }
    currentTrainingReporter()?.eval({ step: done, ppl })
    this.hooks.onProgress?.(
      done / this.hooks.totalSteps,
      `step ${done}/${this.hooks.totalSteps} · eval perplexity ${ppl.toFixed(3)}`,
    )
  }

  /** After training: puts the best checkpoint back when it is not the last step's state. */
  restoreBest(trainer: CheckpointableTrainer): void {
    if (this.best && this.best.step !== this.hooks.totalSteps) trainer.restoreParams(this.best.params)
  }

  /** The note's words for the evals, '' without any. */
  describe(): string {
    return (
      (this.evals.length ? `; eval ppl ${this.evals.map((e) => `${e.step}: ${e.ppl.toFixed(3)}`).join(', ')}` : '') +
      (this.best ? `; kept the best checkpoint, step ${this.best.step} (ppl ${this.best.ppl.toFixed(3)})` : '')
    )
  }

  /** The training summary's eval fields (absent when there were none). */
  summary(): { evals?: { step: number; ppl: number }[]; bestStep?: number } {
    return {
      ...(this.evals.length ? { evals: this.evals } : {}),
      ...(this.best ? { bestStep: this.best.step } : {}),
    }
  }
}
