// Every compression run is a point (size against perplexity). The points of all runs, from the UI and
// the CLI alike, are kept in one small JSON file in the config folder, so the Compare view can plot a
// model's results across restarts. Like recents, a corrupt file reads as empty: the log is a convenience,
// never a reason for a run to fail.

import { randomUUID } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { CompressionSummary, RecipeDoc, ResultPoint } from '../contract/api'
import { describeParams } from '../contract/describe-params'
import type { CompressionReport } from '../engine/compress/compress-model'

/** Points kept in all (oldest dropped first); a point with per-tensor errors is a few KiB. */
const MAX_POINTS = 500

function label(recipe: CompressionSummary['recipe']): string {
  return recipe.steps.map((s) => `${s.method} (${describeParams(s.params ?? {})})`).join(' → ')
}

/** The contract's view of an engine report (the one mapping, used by the job runner and the CLI). */
export function compressionSummary(
  report: CompressionReport,
  run: { compressedModelId: string; sourceModelId: string; recipe: RecipeDoc; evalText: string | null; seqlen: number },
): CompressionSummary {
  return {
    compressedModelId: run.compressedModelId,
    sourceModelId: run.sourceModelId,
    recipe: run.recipe,
    pplBefore: report.ppl_before,
    pplBeforeReused: report.ppl_before_reused,
    pplAfter: report.ppl_after,
    pplAfterStep: report.ppl_after_step,
    sparsity: report.sparsity,
    paramsBefore: report.params_before,
    paramsAfter: report.params_after,
    nonZeroParamsAfter: report.nonzero_params_after,
    ...(report.structure ? { structure: report.structure } : {}),
    ...(report.blocks ? { blocks: report.blocks } : {}),
    evalText: run.evalText,
    seqlen: run.seqlen,
    bitsPerWeight: report.bits_per_weight,
    bytesBefore: report.bytes_before,
    bytesAfter: report.bytes_after,
    bytesDenseAfter: report.bytes_dense_after,
    seconds: report.seconds,
    tensors: report.tensors,
  }
}

/** The point a finished compression leaves; `compressedModelId` only while the session holds the model. */
export function resultPoint(
  modelPath: string,
  modelName: string,
  s: CompressionSummary,
  maxEvalWindows: number | null,
): ResultPoint {
  return {
    id: randomUUID(),
    at: new Date().toISOString(),
    modelPath,
    modelName,
    recipe: s.recipe,
    label: label(s.recipe),
    bitsPerWeight: s.bitsPerWeight,
    bytesBefore: s.bytesBefore,
    bytesAfter: s.bytesAfter,
    bytesDenseAfter: s.bytesDenseAfter,
    sparsity: s.sparsity,
    paramsAfter: s.paramsAfter,
    pplBefore: s.pplBefore,
    pplAfter: s.pplAfter,
    evalText: s.evalText,
    seqlen: s.seqlen,
    maxEvalWindows,
    tensors: s.tensors.map((t) => ({
      name: t.name,
      method: t.method,
      bitsPerWeight: t.bitsPerWeight,
      relWeightError: t.relWeightError,
      relOutputError: t.relOutputError,
    })),
    compressedModelId: s.compressedModelId,
  }
}

function isPoint(p: unknown): p is ResultPoint {
  const o = p as Record<string, unknown> | null
  return (
    !!o &&
    typeof o.id === 'string' &&
    typeof o.modelPath === 'string' &&
    typeof o.bitsPerWeight === 'number' &&
    Array.isArray(o.tensors)
  )
}

export class ResultsLog {
  /** Ids of compressed models this process holds; other points come back with compressedModelId null. */
  private readonly live = new Set<string>()

  constructor(private readonly file: string) {}

  private async read(): Promise<ResultPoint[]> {
    try {
      const data: unknown = JSON.parse(await readFile(this.file, 'utf8'))
      return Array.isArray(data) ? data.filter(isPoint) : []
    } catch {
      return []
    }
  }

  /** The points of one model (by its path), oldest first. */
  async list(modelPath: string): Promise<ResultPoint[]> {
    return (await this.read())
      .filter((p) => p.modelPath === modelPath)
      .map((p) => ({
        ...p,
        compressedModelId: p.compressedModelId && this.live.has(p.compressedModelId) ? p.compressedModelId : null,
      }))
  }

  async add(point: ResultPoint): Promise<void> {
    if (point.compressedModelId) this.live.add(point.compressedModelId)
    const all = (await this.read()).concat(point).slice(-MAX_POINTS)
    await mkdir(path.dirname(this.file), { recursive: true })
    const tmp = `${this.file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`
    await writeFile(tmp, JSON.stringify(all))
    await rename(tmp, this.file)
  }

  /** A compressed model the session no longer holds (dropped from the open models). */
  forget(compressedModelId: string): void {
    this.live.delete(compressedModelId)
  }
}
