// whittle-report.json: a compression report as one JSON document whose keys are all snake_case, like the
// Hugging Face and llm-compressor files written beside it and like the CLI's --json and sweep.json. The
// engine's own objects (CompressionReport, TensorOutcome) keep TypeScript's casing; this is the one
// mapping from them to the file. README.md's "whittle-report.json" table documents every field, and
// report-json.test.ts checks a written report against that table.

import type { ExportResult } from '../../contract/api'
import type { KvCacheReport } from '../analysis/kv-ranges'
import type { CompressionReport } from '../compress/compress-model'
import type { Recipe } from '../compress/recipe/recipe'
import type { TensorOutcome } from '../compress/pipeline-types'

export const REPORT_JSON_FILE = 'whittle-report.json'

export interface HistogramPair {
  name: string
  /** Value range the bins cover. */
  lo: number
  hi: number
  /** Counts per bin, before and after compression (same bin edges). */
  before: number[]
  after: number[]
}

/** What an export adds to the compression's own report. */
export interface ReportExtra {
  /** The export format written beside the report (e.g. "gptq", "compressed-tensors"). */
  exportFormat?: string
  histograms?: HistogramPair[]
}

/** The report as the engine holds it, the input of both the JSON document and the HTML page. */
export type ExportReport = CompressionReport & ReportExtra

/** One tensor changed by one step. */
export interface ReportTensorJson {
  name: string
  layer: number
  role: string
  /** 0-based index of the recipe step. */
  step: number
  method: string
  format: string
  shape: [number, number]
  bits_per_weight: number
  rel_weight_error: number
  rel_output_error: number | null
  sparsity: number
  note?: string
  stored_params?: number
  nm?: { n: number; m: number; violations: number; groups: number; valid: boolean }
  mask?: { rows: number; cols: number; density: number[] }
}

export interface ReportJson {
  model: string
  /** The recipe as run, normalised (its own format: README's Recipes section; written as whittle-recipe.yaml too). */
  recipe: Recipe
  export_format?: string
  eval: { text: string; seqlen: number; windows: number } | null
  ppl_before: number | null
  ppl_before_reused: boolean
  ppl_after: number | null
  ppl_after_step: (number | null)[]
  sparsity: number
  params_before: number
  params_after: number
  nonzero_params_after: number
  structure?: { layers: [number, number]; heads: [number, number]; kv_heads: [number, number] }
  blocks?: {
    layer: number
    hidden: [number, number]
    heads: [number, number]
    kv_heads: [number, number]
    intermediate: [number, number]
  }[]
  bits_per_weight: number
  bytes_before: number
  bytes_after: number
  bytes_dense_after: number
  compressed_params: number
  seconds: number
  tensors: ReportTensorJson[]
  /** Per recovery (training) step of the recipe: its first and last loss and the tokens it saw. */
  training?: ReportTrainingJson[]
  histograms?: HistogramPair[]
  /** The recipe's kv_cache, as `whittle eval --kv --json` reports it: the perplexities after were measured with it. */
  kv_cache?: KvCacheReport
}

export interface ReportTrainingJson {
  step: number
  method: string
  steps: number
  first_loss: number
  last_loss: number
  tokens: number
  seconds: number
  /** The loss of every optimizer step. */
  losses: number[]
}

export function reportTensorJson(t: TensorOutcome): ReportTensorJson {
  return {
    name: t.name,
    layer: t.layer,
    role: t.role,
    step: t.step,
    method: t.method,
    format: t.format,
    shape: t.shape,
    bits_per_weight: t.bitsPerWeight,
    rel_weight_error: t.relWeightError,
    rel_output_error: t.relOutputError,
    sparsity: t.sparsity,
    ...(t.note !== undefined ? { note: t.note } : {}),
    ...(t.storedParams !== undefined ? { stored_params: t.storedParams } : {}),
    ...(t.nm
      ? { nm: { n: t.nm.n, m: t.nm.m, violations: t.nm.violations, groups: t.nm.groups, valid: t.nm.valid } }
      : {}),
    ...(t.mask ? { mask: { rows: t.mask.rows, cols: t.mask.cols, density: t.mask.density } } : {}),
  }
}

export function reportJson(r: ExportReport): ReportJson {
  return {
    model: r.model,
    recipe: r.recipe,
    ...(r.exportFormat !== undefined ? { export_format: r.exportFormat } : {}),
    eval: r.eval,
    ppl_before: r.ppl_before,
    ppl_before_reused: r.ppl_before_reused,
    ppl_after: r.ppl_after,
    ppl_after_step: r.ppl_after_step,
    sparsity: r.sparsity,
    params_before: r.params_before,
    params_after: r.params_after,
    nonzero_params_after: r.nonzero_params_after,
    ...(r.structure
      ? { structure: { layers: r.structure.layers, heads: r.structure.heads, kv_heads: r.structure.kvHeads } }
      : {}),
    ...(r.blocks
      ? {
          blocks: r.blocks.map((b) => ({
            layer: b.layer,
            hidden: b.hidden,
            heads: b.heads,
            kv_heads: b.kvHeads,
            intermediate: b.intermediate,
          })),
        }
      : {}),
    bits_per_weight: r.bits_per_weight,
    bytes_before: r.bytes_before,
    bytes_after: r.bytes_after,
    bytes_dense_after: r.bytes_dense_after,
    compressed_params: r.compressed_params,
    seconds: r.seconds,
    tensors: r.tensors.map(reportTensorJson),
    ...(r.training?.length
      ? {
          training: r.training.map((t) => ({
            step: t.step,
            method: t.method,
            steps: t.steps,
            first_loss: t.firstLoss,
            last_loss: t.lastLoss,
            tokens: t.tokens,
            seconds: t.seconds,
            losses: t.losses,
            ...(t.evals ? { evals: t.evals } : {}),
            ...(t.bestStep !== undefined ? { best_step: t.bestStep } : {}),
          })),
        }
      : {}),
    ...(r.kv_cache ? { kv_cache: r.kv_cache } : {}),
    ...(r.histograms
      ? {
          histograms: r.histograms.map((h) => ({ name: h.name, lo: h.lo, hi: h.hi, before: h.before, after: h.after })),
        }
      : {}),
  }
}

/** An export's outcome in the same casing, for `whittle compress --json`. */
export interface ExportResultJson {
  out: string
  format: string
  files: { name: string; bytes: number }[]
  verified: string
  report_path: string | null
  seconds: number
}

export function exportResultJson(e: ExportResult): ExportResultJson {
  return {
    out: e.out,
    format: e.format,
    files: e.files.map((f) => ({ name: f.name, bytes: f.bytes })),
    verified: e.verified,
    report_path: e.reportPath,
    seconds: e.seconds,
  }
}
