// `whittle compress MODEL --recipe sweep.yaml --out DIR --sweep`: the recipe's sweep section names one
// step's parameter and a list of values; each value is a whole compression run, measured on --eval.
// DIR receives the points as sweep.json and sweep.csv (written atomically), and each point also joins
// the results log, so the desktop app's Compare view plots CLI sweeps beside its own runs.

import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { RecipeDoc } from '../contract/api'
import { expandSweep, type RecipeSweep } from '../contract/sweep'
import { bundledText } from '../app/paths'
import { defaultConfigDir } from '../app/recents'
import { compressionSummary, resultPoint, ResultsLog } from '../app/results-log'
import { compressModel, type CompressionReport } from '../engine/compress/compress-model'
import { validateRecipe, type Recipe } from '../engine/compress/recipe/recipe'
import { writeFolderAtomically } from '../engine/export/atomic-folder'
import type { LoadedModel } from '../engine/model/loaded-model'
import type { WorkerPool } from '../engine/pool/worker-pool'
import type { progressLine } from './format'

export interface SweepRow {
  value: number | string | boolean
  bits_per_weight: number
  bytes_after: number
  bytes_dense_after: number
  sparsity: number
  ppl_before: number | null
  ppl_after: number | null
  seconds: number
  /** Parameter counts of the whole model (structural steps: SliceGPT's shortcut matrices counted). */
  params_before: number
  params_after: number
  recipe: RecipeDoc
}

const CSV_COLUMNS = [
  'value',
  'bits_per_weight',
  'bytes_after',
  'bytes_dense_after',
  'sparsity',
  'ppl_before',
  'ppl_after',
  'seconds',
  'params_before',
  'params_after',
] as const

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v)
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function sweepCsv(rows: SweepRow[]): string {
  return [CSV_COLUMNS.join(','), ...rows.map((r) => CSV_COLUMNS.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n'
}

/** Adds a CLI run to the results log the desktop app's Compare view reads (never fails the run). */
export async function recordCliResult(
  model: LoadedModel,
  report: CompressionReport,
  recipe: RecipeDoc,
  evalPath: string | null,
  seqlen: number,
  maxWindows: number | null,
): Promise<void> {
  const log = new ResultsLog(path.join(defaultConfigDir(), 'results.json'))
  const summary = compressionSummary(report, {
    compressedModelId: '',
    sourceModelId: model.id,
    recipe,
    evalText: evalPath,
    seqlen,
  })
  await log
    .add({
      ...resultPoint(model.files.path, path.basename(model.files.path), summary, maxWindows),
      compressedModelId: null,
    })
    .catch(() => undefined)
}

export async function runSweep(
  pool: WorkerPool,
  model: LoadedModel,
  recipe: Recipe & { sweep: RecipeSweep },
  o: {
    recipeDir: string
    out: string
    evalText?: { path: string; ids: Int32Array }
    seqlen: number
    maxWindows?: number
    progress: ReturnType<typeof progressLine>
  },
): Promise<SweepRow[]> {
  const runs = expandSweep(recipe as RecipeDoc & { sweep: RecipeSweep })
  const rows: SweepRow[] = []
  for (const [i, run] of runs.entries()) {
    const label = `${recipe.sweep.param} = ${String(run.value)} (${i + 1}/${runs.length})`
    const { report } = await compressModel(pool, model, validateRecipe(run.recipe), {
      recipeDir: o.recipeDir,
      defaultCalibrationText: bundledText('calib'),
      evalText: o.evalText,
      seqlen: o.seqlen,
      maxEvalWindows: o.maxWindows,
      onProgress: (f, m) => o.progress.update((i + f) / runs.length, `${label}: ${m}`),
    })
    rows.push({
      value: run.value,
      bits_per_weight: report.bits_per_weight,
      bytes_after: report.bytes_after,
      bytes_dense_after: report.bytes_dense_after,
      sparsity: report.sparsity,
      ppl_before: report.ppl_before,
      ppl_after: report.ppl_after,
      seconds: report.seconds,
      params_before: report.params_before,
      params_after: report.params_after,
      recipe: run.recipe,
    })
    await recordCliResult(model, report, run.recipe, o.evalText?.path ?? null, o.seqlen, o.maxWindows ?? null)
  }
  await writeFolderAtomically(o.out, async (dir) => {
    await writeFile(
      path.join(dir, 'sweep.json'),
      JSON.stringify(
        { model: model.files.path, param: recipe.sweep.param, step: recipe.sweep.step ?? 1, points: rows },
        null,
        1,
      ),
    )
    await writeFile(path.join(dir, 'sweep.csv'), sweepCsv(rows))
  })
  return rows
}
