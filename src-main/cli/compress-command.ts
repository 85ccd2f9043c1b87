// `whittle compress MODEL --recipe FILE [--eval FILE] [--seqlen 256] --out DIR
//    [--format safetensors|gptq|compressed-tensors|compressed-tensors-w8a8|gguf|sparse-bitmask|sparse-24-bitmask|squeezellm] [--gguf-type Q4_K_M] [--gptq-format gptq|gptq_v2]
//    [--dtype F32|F16|BF16] [--shard-size BYTES] [--json]`
// Runs the recipe, measures perplexity before and after on --eval, and exports DIR atomically and
// verified: the compressed model in the chosen format, whittle-recipe.yaml, whittle-report.html/.json.

import path from 'node:path'
import type { ExportFormat, RecipeDoc } from '../contract/api'
import { TENSOR_COLUMNS as C } from '../contract/tensor-columns'
import { bundledText } from '../app/paths'
import { compressModel, type CompressionReport } from '../engine/compress/compress-model'
import { readRecipe } from '../engine/compress/recipe/recipe'
import { readTextFile, tokenizeForEval } from '../engine/eval/tokenize-text'
import {
  EXPORT_FORMATS,
  defaultGgufType,
  estimateExportBytes,
  exportModel,
  type ExportModelOptions,
} from '../engine/export/export-model'
import { GGUF_EXPORT_TYPES, isGgufExportType } from '../engine/export/gguf/type-policy'
import { readImatrixFile } from '../engine/formats/imatrix-file'
import { assertExportDestination } from '../engine/export/preflight'
import { exportResultJson, reportJson } from '../engine/export/report-json'
import { kvCacheLine } from '../engine/export/report-html'
import { exportGgufLoraAdapter } from '../engine/export/gguf/lora-adapter'
import { exportPeftAdapter } from '../engine/export/peft-adapter'
import { assertFreeDestination } from '../engine/export/atomic-folder'
import { loadModel } from '../engine/model/loaded-model'
import { withReplacements } from '../engine/model/model-view'
import { WorkerPool } from '../engine/pool/worker-pool'
import { intFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { COMPRESS_HEADER } from './command-headers'
import { recordCliResult, runSweep } from './compress-sweep'
import { METHOD_HELP } from './method-help'
import { formatBytes, progressLine, table, warnIfBeyondContext } from './format'
import { dryRunTable, GGUF_FLAG_OPTIONS, parseGgufFlags } from './gguf-flags'
import { planGgufExport } from '../engine/export/gguf/export-gguf'
import { predictCompression } from '../engine/compress/predict'

export const COMPRESS: CommandSpec = {
  ...COMPRESS_HEADER,
  options: [
    { name: 'recipe', value: 'FILE', help: 'the recipe (YAML or JSON; presets in resources/recipes/) (required)' },
    { name: 'out', value: 'DIR', help: 'destination; must not exist (required)' },
    { name: 'eval', value: 'FILE', help: 'text to measure perplexity before, after and after each step' },
    { name: 'seqlen', value: 'N', help: 'eval window length in tokens (default 256)' },
    { name: 'max-windows', value: 'N', help: 'evaluate only the first N windows (default: all)' },
    { name: 'format', value: 'FORMAT', help: `export format: ${EXPORT_FORMATS.join(' | ')} (default safetensors)` },
    {
      name: 'gguf-type',
      value: 'TYPE',
      help: `GGUF type for --format gguf (default: the recipe's own GGUF type, else Q8_0): ${GGUF_EXPORT_TYPES.join(' ')}`,
    },
    {
      name: 'imatrix',
      value: 'FILE',
      help: 'importance matrix for --format gguf (GGUF or .dat; llama-quantize --imatrix)',
    },
    { name: 'gptq-format', value: 'V', help: 'gptq (v1, default) or gptq_v2, for --format gptq' },
    { name: 'dtype', value: 'DTYPE', help: 'F32 | F16 | BF16 for dense safetensors (default: as held)' },
    { name: 'shard-size', value: 'BYTES', help: 'shard dense safetensors past this size (default 5 GB)' },
    ...GGUF_FLAG_OPTIONS,
    { name: 'threads', value: 'N', help: 'worker threads for the kernels (default: one per core)' },
    {
      name: 'adapter-out',
      value: 'PATH',
      help: 'also write the LoRA adapters a lora step trained: PATH.gguf as a llama.cpp --lora adapter, else a PEFT adapter folder',
    },
    {
      name: 'sweep',
      help: "run the recipe's sweep section (one compression per value); DIR gets sweep.json and sweep.csv",
    },
    { name: 'json', help: 'print one JSON document on stdout (progress stays on stderr)' },
  ],
  topics: [METHOD_HELP],
}

export async function compressCommand(argv: string[]): Promise<number> {
  const args = parseCommand(argv, COMPRESS)
  if (args.positionals.length !== 1) throw new UsageError('compress needs exactly one MODEL path')
  if (typeof args.flags.recipe !== 'string') throw new UsageError('compress needs --recipe FILE')
  if (typeof args.flags.out !== 'string') throw new UsageError('compress needs --out DIR')
  const seqlen = intFlag(args, 'seqlen', 256, 2, 1 << 16)
  const threads = intFlag(args, 'threads', 0, 0, 64) || undefined
  const maxWindows = intFlag(args, 'max-windows', 0, 0, 1 << 30) || undefined
  const exportOptions = exportFlags(args.flags)
  const gguf = parseGgufFlags(args.flags, exportOptions.format === 'gguf')
  if (exportOptions.format === 'gguf') exportOptions.gguf = gguf.flags
  if (args.flags.imatrix !== undefined) {
    if (typeof args.flags.imatrix !== 'string' || exportOptions.format !== 'gguf')
      throw new UsageError('--imatrix FILE applies to --format gguf only')
    exportOptions.imatrix = {
      imatrix: (await readImatrixFile(path.resolve(args.flags.imatrix))).imatrix,
      file: args.flags.imatrix,
    }
  }
  const recipeFile = path.resolve(args.flags.recipe)
  const out = path.resolve(args.flags.out)
  const read = await readRecipe(recipeFile)
  // --prune-layers is llama-quantize's spelling of a drop_layers step; it runs first, so every later step
  // calibrates on the model that will be shipped.
  const recipe = gguf.pruneLayers
    ? {
        ...read,
        steps: [
          { method: 'drop_layers', targets: { include: [], exclude: [] }, params: { layers: gguf.pruneLayers } },
          ...read.steps,
        ],
      }
    : read
  if (args.flags.sweep && !recipe.sweep)
    throw new UsageError(
      `--sweep needs a recipe with a sweep section, e.g. sweep: {step: 1, param: bits, values: [2, 3, 4, 8]} (${recipeFile} has none)`,
    )
  if (!args.flags.sweep && recipe.sweep)
    throw new UsageError(`${recipeFile} has a sweep section: run it with --sweep (one compression per value)`)
  const model = await loadModel(path.resolve(args.positionals[0]))
  if (gguf.dryRun) {
    // Sizes only: the recipe's predicted storage, and for GGUF the type policy's per-tensor plan of the model
    // as it is now (layers a drop_layers step removes are not subtracted).
    const predicted = predictCompression(model, recipe)
    // As the export picks it (export-model.ts's defaultGgufType), from the predicted tensors.
    const type = exportOptions.ggufType ?? defaultGgufType(predicted.tensors)
    const plan =
      exportOptions.format === 'gguf' && isGgufExportType(type) ? planGgufExport(model, { ...gguf.flags, type }) : null
    if (args.flags.json)
      process.stdout.write(
        JSON.stringify({ dryRun: true, prediction: predicted, gguf: plan && { type, ...plan } }, null, 1) + '\n',
      )
    else {
      process.stdout.write(
        `recipe: ${formatBytes(predicted.bytesBefore)} → ${formatBytes(predicted.bytesAfter)} predicted, ${predicted.bitsPerWeight.toFixed(3)} bits per compressed weight\n`,
      )
      if (plan) process.stdout.write(dryRunTable(plan, type))
    }
    return 0
  }
  const adapterOut = typeof args.flags['adapter-out'] === 'string' ? path.resolve(args.flags['adapter-out']) : null
  if (
    adapterOut &&
    !recipe.steps.some((s) => s.method === 'lora' || (s.method === 'distill' && s.params.trainable === 'lora'))
  ) {
    throw new UsageError(
      '--adapter-out needs a recipe step that trains LoRA adapters (lora, or distill with trainable: lora)',
    )
  }
  if (adapterOut) await assertFreeDestination(adapterOut, [model.files.path])
  // Read-only, occupied or too-full destinations fail now, not after calibration and GPTQ.
  await assertExportDestination(
    out,
    [model.files.path, ...model.files.files],
    estimateExportBytes(withReplacements(model), exportOptions, new Map()),
  )
  warnIfBeyondContext(model, seqlen)
  const progress = progressLine(process.stderr)
  let evalText: { path: string; ids: Int32Array } | undefined
  if (typeof args.flags.eval === 'string') {
    const p = path.resolve(args.flags.eval)
    progress.update(0, 'tokenizing the eval text')
    // Every perplexity of this run reads at most --max-windows windows: only their tokens are needed.
    const ids = await tokenizeForEval(model.files, await readTextFile(p), {
      maxTokens: maxWindows && maxWindows * seqlen,
    })
    evalText = { path: p, ids }
  }
  const pool = await WorkerPool.create({ threads })
  try {
    if (recipe.sweep) {
      const rows = await runSweep(
        pool,
        model,
        { ...recipe, sweep: recipe.sweep },
        { recipeDir: path.dirname(recipeFile), out, evalText, seqlen, maxWindows, progress },
      )
      progress.done(`${rows.length} runs → ${path.join(out, 'sweep.json')}, sweep.csv`)
      if (args.flags.json) process.stdout.write(JSON.stringify({ out, points: rows }, null, 1) + '\n')
      else
        process.stdout.write(
          table(
            [recipe.sweep.param, C.bitsPerWeight, 'size (compact)', 'perplexity'],
            rows.map((r) => [
              String(r.value),
              r.bits_per_weight.toFixed(3),
              formatBytes(r.bytes_after),
              r.ppl_after === null ? '—' : r.ppl_after.toFixed(4),
            ]),
          ),
        )
      return 0
    }
    const { view, report, records, ggufBytes, adapters } = await compressModel(pool, model, recipe, {
      recipeDir: path.dirname(recipeFile),
      defaultCalibrationText: bundledText('calib'),
      evalText,
      seqlen,
      maxEvalWindows: maxWindows,
      onProgress: progress.update,
    })
    const written = await exportModel(pool, view, out, {
      ...exportOptions,
      compression: { source: model, report, records, ggufBytes },
      onProgress: (f, m) => progress.update(f, `export: ${m}`),
    })
    const adapter =
      adapterOut && adapters
        ? adapterOut.endsWith('.gguf')
          ? {
              path: adapterOut,
              format: 'gguf-lora',
              tensors: (await exportGgufLoraAdapter(adapterOut, adapters, model)).tensors,
            }
          : {
              path: adapterOut,
              format: 'peft',
              tensors: (await exportPeftAdapter(adapterOut, adapters, model)).tensors,
            }
        : null
    progress.done(
      `compressed in ${report.seconds.toFixed(1)} s, exported in ${written.seconds.toFixed(1)} s → ${out}${adapter ? `; adapters → ${adapter.path}` : ''}`,
    )
    await recordCliResult(model, report, recipe as RecipeDoc, evalText?.path ?? null, seqlen, maxWindows ?? null)
    if (args.flags.json)
      process.stdout.write(
        JSON.stringify(
          { out, export: exportResultJson(written), ...(adapter ? { adapter } : {}), ...reportJson(report) },
          null,
          1,
        ) + '\n',
      )
    else
      process.stdout.write(
        humanReport(report, out, { bytes: written.files.reduce((n, f) => n + f.bytes, 0), format: written.format }) +
          `verified     ${written.verified}\n`,
      )
    return 0
  } finally {
    await pool.close()
  }
}

function exportFlags(flags: Record<string, string | boolean | undefined>): Omit<ExportModelOptions, 'compression'> {
  const format = flags.format ?? 'safetensors'
  if (typeof format !== 'string' || !EXPORT_FORMATS.includes(format as ExportFormat))
    throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`)
  const ggufType = flags['gguf-type']
  if (ggufType !== undefined && (typeof ggufType !== 'string' || !isGgufExportType(ggufType)))
    throw new UsageError(`--gguf-type must be one of ${GGUF_EXPORT_TYPES.join(', ')}`)
  const gptqFormat = flags['gptq-format']
  if (gptqFormat !== undefined && gptqFormat !== 'gptq' && gptqFormat !== 'gptq_v2')
    throw new UsageError('--gptq-format must be gptq or gptq_v2')
  const dtype = flags.dtype
  if (dtype !== undefined && dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16')
    throw new UsageError('--dtype must be F32, F16 or BF16')
  const shard = flags['shard-size']
  const shardBytes = shard === undefined ? undefined : Number(shard)
  if (shardBytes !== undefined && !Number.isSafeInteger(shardBytes))
    throw new UsageError('--shard-size must be a whole number of bytes')
  return { format: format as ExportFormat, ggufType, gptqFormat, dtype, shardBytes }
}

function humanReport(r: CompressionReport, out: string, exported: { bytes: number; format: string }): string {
  const ppl =
    r.ppl_before !== null && r.ppl_after !== null
      ? `perplexity   ${r.ppl_before.toFixed(4)} → ${r.ppl_after.toFixed(4)} (${((r.ppl_after / r.ppl_before - 1) * 100).toFixed(2)}%)\n`
      : ''
  return (
    [
      `written      ${out}`,
      ppl.trimEnd(),
      r.kv_cache ? `kv cache     ${kvCacheLine(r.kv_cache)} (perplexity after measured with it)` : '',
      ...(r.training ?? []).map(
        (t) =>
          `training     step ${t.step + 1} ${t.method}: loss ${t.firstLoss.toFixed(4)} → ${t.lastLoss.toFixed(4)} over ${t.steps} steps, ${t.tokens} tokens, ${t.seconds.toFixed(1)} s`,
      ),
      `size         ${formatBytes(r.bytes_before)} → ${formatBytes(r.bytes_after)} stored compactly (GPTQ, compressed-tensors, GGUF), ${r.bits_per_weight.toFixed(3)} bits per compressed weight`,
      `             ${formatBytes(r.bytes_dense_after)} as dense safetensors`,
      `exported     ${formatBytes(exported.bytes)} as ${exported.format}`,
      '',
      table(
        [C.name, C.method, C.format, C.bitsPerWeight, C.relWeightError, C.relOutputError],
        r.tensors.map((t) => [
          t.name,
          t.method,
          t.format,
          t.bitsPerWeight.toFixed(3),
          t.relWeightError.toExponential(2),
          t.relOutputError === null ? '-' : t.relOutputError.toExponential(2),
        ]),
      ),
    ]
      .filter((l) => l !== '')
      .join('\n') + '\n'
  )
}
