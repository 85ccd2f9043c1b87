// What each kind of job does, given a validated spec and an open model. The service only starts them.

import { stat } from 'node:fs/promises'
import path from 'node:path'
import type { CalibrationRequest, JobSpec, PerplexityReport, ResultPoint } from '../contract/api'
import { compressModel } from '../engine/compress/compress-model'
import { validateRecipe } from '../engine/compress/recipe/recipe'
import { activationReport } from '../engine/analysis/activation-report'
import { headImportance } from '../engine/analysis/head-importance'
import { layerImportance } from '../engine/analysis/layer-importance'
import { kvCacheAnalysis } from '../engine/analysis/kv-ranges'
import { captureCalibration } from '../engine/calibration/capture'
import { calibrationWindows, DEFAULT_CALIBRATION } from '../engine/calibration/windows'
import { WhittleError } from '../engine/errors'
import { exportModel, type CompressionProvenance } from '../engine/export/export-model'
import { perplexity } from '../engine/eval/perplexity'
import { evalBos, readTextFile, tokenizeForEval } from '../engine/eval/tokenize-text'
import { createForward } from '../engine/forward'
import { scanModel } from '../engine/inspect/model-scan'
import { inspectTensor } from '../engine/inspect/tensor-detail'
import { withTrainingReporter, type TrainingReporter } from '../engine/jobs/job-controls'
import type { JobContext, JobRunner } from '../engine/jobs/job-registry'
import { tensorsByLayer, type LoadedModel } from '../engine/model/loaded-model'
import { getPool } from '../engine/pool/worker-pool'
import { bundledText } from './paths'
import { compressionSummary, resultPoint } from './results-log'

/** Probes that re-run the model per head or per block default to fewer windows than a capture. */
const PROBE_SAMPLES = 16

const tokenCache = new Map<string, Int32Array>()
/**
 * Perplexities already measured, by model, text (path, mtime, size), seqlen and window count: the
 * Compress and Prune runs' "before" is the Run tab's number when the same text and seqlen were measured,
 * not another minute of forward passes.
 */
const pplCache = new Map<string, number>()
const PPL_CACHE_SIZE = 32

/** Names one text file's current contents (a changed file gets a new key). */
async function textKey(model: LoadedModel, textPath: string): Promise<string> {
  const st = await stat(textPath).catch(() => {
    throw new WhittleError('not-found', textPath, 'no such text file')
  })
  // A GGUF without tokenizer.json tokenizes with its own metadata: key by the file then, not by 'null'.
  return `${model.files.tokenizerPath ?? model.files.files[0]}|${textPath}|${st.mtimeMs}|${st.size}`
}

async function pplKey(
  model: LoadedModel,
  textPath: string,
  seqlen: number,
  maxWindows: number | undefined,
): Promise<string> {
  return `${model.id}|${await textKey(model, textPath)}|${seqlen}|${maxWindows ?? 'all'}`
}

function rememberPpl(key: string, ppl: number): void {
  pplCache.delete(key)
  pplCache.set(key, ppl)
  if (pplCache.size > PPL_CACHE_SIZE) pplCache.delete(pplCache.keys().next().value!)
}

async function tokens(model: LoadedModel, textPath: string): Promise<Int32Array> {
  const key = await textKey(model, textPath)
  const hit = tokenCache.get(key)
  if (hit) return hit
  const ids = await tokenizeForEval(model.files, await readTextFile(textPath))
  tokenCache.set(key, ids)
  if (tokenCache.size > 4) tokenCache.delete(tokenCache.keys().next().value!)
  return ids
}

function textOrBundled(path: string | undefined, which: 'eval' | 'calib'): string {
  const p = path ?? bundledText(which)
  if (!p) throw new WhittleError('not-found', null, `no text given and no bundled ${which} text in this build`)
  return p
}

async function windowsFor(
  model: LoadedModel,
  req: CalibrationRequest | undefined,
  defaultSamples: number,
): Promise<Int32Array[]> {
  const text = textOrBundled(req?.text, 'calib')
  const ids = await tokens(model, text)
  return calibrationWindows(
    ids,
    {
      samples: req?.samples ?? defaultSamples,
      seqlen: req?.seqlen ?? DEFAULT_CALIBRATION.seqlen,
      seed: req?.seed ?? DEFAULT_CALIBRATION.seed,
    },
    text,
  )
}

/**
 * A compress job's progress with its training steps' numbers: the reporter (installed around the run,
 * job-controls.ts) sends each step and eval with the latest progress line.
 */
function liveTraining(ctx: JobContext): {
  reporter: TrainingReporter
  onProgress: (fraction: number, message: string) => void
} {
  let fraction = 0,
    message = 'starting',
    totalSteps = 0
  return {
    onProgress: (f, m) => {
      fraction = f
      message = m
      ctx.progress(f, m)
    },
    reporter: {
      step: (point, total) => {
        totalSteps = total
        ctx.progress(fraction, message, { totalSteps, steps: [point], evals: [] })
      },
      eval: (point) => ctx.progress(fraction, message, { totalSteps, steps: [], evals: [point] }),
    },
  }
}

export interface RunnerHost {
  /** Opens a derived model (a compression result) in the engine and returns its id. */
  registerModel(model: LoadedModel, compression?: CompressionProvenance): string
  /** What the compression that produced a model left for its export (null for a model opened from disk). */
  compressionOf(modelId: string): CompressionProvenance | null
  /** Records a report an export wrote, so the renderer may read it back. */
  reportWritten(path: string): void
  /** Keeps a finished compression's point for the Compare view. */
  recordResult?(point: ResultPoint): Promise<void>
}

export function jobRunner(spec: JobSpec, model: LoadedModel, host: RunnerHost): JobRunner {
  switch (spec.kind) {
    case 'tensor': {
      const entry = model.entry(spec.name)
      const info = model.tensors.find((t) => t.name === spec.name)!
      return async (ctx) => ({
        kind: spec.kind,
        result: await inspectTensor(await getPool(), entry, info, {
          bins: spec.bins,
          k: spec.k,
          range: spec.range,
          signal: ctx.signal,
          onProgress: (f) => ctx.progress(f, `reading ${spec.name}`),
        }),
      })
    }
    case 'scan':
      return async (ctx) => ({
        kind: spec.kind,
        result: await scanModel(await getPool(), model.id, tensorsByLayer(model), {
          k: spec.k,
          signal: ctx.signal,
          onProgress: ctx.progress,
        }),
      })
    case 'perplexity':
      return async (ctx) => {
        const text = textOrBundled(spec.text, 'eval')
        ctx.progress(0, 'tokenizing')
        const ids = await tokens(model, text)
        const protocol = spec.protocol ?? 'gptq'
        const r = await perplexity(await getPool(), model, ids, {
          seqlen: spec.seqlen ?? 256,
          maxWindows: spec.maxWindows,
          protocol,
          bos: protocol === 'llama.cpp' ? await evalBos(model.files) : null,
          signal: ctx.signal,
          textFile: text,
          onProgress: ctx.progress,
        })
        // The remembered number is the compress view's "before", which is measured with the gptq protocol.
        if (protocol === 'gptq') rememberPpl(await pplKey(model, text, spec.seqlen ?? 256, spec.maxWindows), r.ppl)
        const report: PerplexityReport = {
          ppl: r.ppl,
          meanNll: r.mean_nll,
          protocol,
          tokens: r.tokens,
          windows: r.windows,
          seqlen: r.seqlen,
          tokensPerSecond: r.tokens_per_second,
          seconds: r.seconds,
          text,
        }
        return { kind: spec.kind, result: report }
      }
    case 'kv-cache':
      return async (ctx) => {
        const text = textOrBundled(spec.text, 'eval')
        ctx.progress(0, 'tokenizing')
        const ids = await tokens(model, text)
        const result = await kvCacheAnalysis(await getPool(), model, ids, {
          seqlen: spec.seqlen ?? 256,
          maxWindows: spec.maxWindows,
          settings: spec.settings,
          contextLength: spec.contextLength,
          textFile: text,
          signal: ctx.signal,
          onProgress: ctx.progress,
        })
        return { kind: spec.kind, result }
      }
    case 'activations':
      return async (ctx) => {
        ctx.progress(0, 'tokenizing calibration text')
        const windows = await windowsFor(model, spec.calibration, DEFAULT_CALIBRATION.samples)
        const layers = await captureCalibration(await getPool(), model, windows, {
          signal: ctx.signal,
          onProgress: ctx.progress,
        })
        return {
          kind: spec.kind,
          result: await activationReport(
            model,
            layers.map((l) => l!),
            windows[0].length,
            spec.threshold,
          ),
        }
      }
    case 'compress':
      return async (ctx) => {
        const recipe = validateRecipe(spec.recipe)
        const textPath = textOrBundled(spec.evalText, 'eval')
        ctx.progress(0, 'tokenizing the eval text')
        const ids = await tokens(model, textPath)
        const seqlen = spec.seqlen ?? 256
        const beforeKey = await pplKey(model, textPath, seqlen, spec.maxEvalWindows)
        const live = liveTraining(ctx)
        const pool = await getPool()
        const { view, report, records, ggufBytes } = await withTrainingReporter(live.reporter, () =>
          compressModel(pool, model, recipe, {
            recipeDir: process.cwd(),
            defaultCalibrationText: bundledText('calib'),
            evalText: { path: textPath, ids },
            seqlen,
            maxEvalWindows: spec.maxEvalWindows,
            knownPplBefore: pplCache.get(beforeKey),
            signal: ctx.signal,
            onProgress: live.onProgress,
          }),
        )
        if (report.ppl_before !== null) rememberPpl(beforeKey, report.ppl_before)
        const compressedModelId = host.registerModel(view, { source: model, report, records, ggufBytes })
        const summary = compressionSummary(report, {
          compressedModelId,
          sourceModelId: model.id,
          recipe: spec.recipe,
          evalText: textPath,
          seqlen,
        })
        // The log is a convenience: a full disk there must not fail the run that just succeeded.
        await host
          .recordResult?.(
            resultPoint(model.files.path, path.basename(model.files.path), summary, spec.maxEvalWindows ?? null),
          )
          .catch(() => undefined)
        return { kind: spec.kind, result: summary }
      }
    case 'export':
      return async (ctx) => {
        const result = await exportModel(await getPool(), model, spec.out, {
          format: spec.format,
          ggufType: spec.ggufType,
          gguf: spec.gguf,
          gptqFormat: spec.gptqFormat,
          dtype: spec.dtype,
          shardBytes: spec.shardBytes,
          compression: host.compressionOf(model.id) ?? undefined,
          signal: ctx.signal,
          onProgress: ctx.progress,
        })
        if (result.reportPath) host.reportWritten(result.reportPath)
        return { kind: spec.kind, result }
      }
    case 'heads':
    case 'layers':
      return async (ctx) => {
        ctx.progress(0, 'tokenizing calibration text')
        const windows = await windowsFor(model, spec.calibration, PROBE_SAMPLES)
        const forward = await createForward(await getPool(), model)
        try {
          return spec.kind === 'heads'
            ? {
                kind: spec.kind,
                result: await headImportance(forward, model, windows, { signal: ctx.signal, onProgress: ctx.progress }),
              }
            : {
                kind: spec.kind,
                result: await layerImportance(forward, windows, { signal: ctx.signal, onProgress: ctx.progress }),
              }
        } finally {
          forward.close()
        }
      }
  }
}
