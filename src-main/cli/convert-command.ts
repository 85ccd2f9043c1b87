// `whittle convert MODEL --out PATH --format gguf|safetensors|sparse-bitmask|sparse-24-bitmask [--gguf-type Q8_0] [--imatrix FILE] [--name NAME] [--json]`
//   [--pure] [--output-tensor-type T] [--token-embedding-type T] [--leave-output-tensor] [--tensor-type P=T,…]
//   [--prune-layers L,…] [--dry-run] [--allow-requantize]   (llama-quantize's type flags, cli/gguf-flags.ts)
// Format conversion without calibration: a Llama checkpoint (HF or GGUF) to GGUF of a chosen type, or a
// GGUF Llama back to a Hugging Face safetensors folder, or a pruned safetensors model to compressed-tensors'
// sparse formats (its sparse Linears as bitmask + values, smaller on disk). Progress goes to stderr; --json prints a summary.

import path from 'node:path'
import { exportGguf, planGgufExport } from '../engine/export/gguf/export-gguf'
import { isSparseExportFormat, SPARSE_EXPORT_FORMATS } from '../engine/export/compressed-tensors-sparse'
import { exportModel } from '../engine/export/export-model'
import { readImatrixFile } from '../engine/formats/imatrix-file'
import { exportSafetensorsFromGguf } from '../engine/export/gguf/gguf-to-safetensors'
import { GGUF_EXPORT_TYPES, isGgufExportType } from '../engine/export/gguf/type-policy'
import { loadModel } from '../engine/model/loaded-model'
import { WorkerPool } from '../engine/pool/worker-pool'
import { intFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { CONVERT_HEADER } from './command-headers'
import { formatBytes, progressLine, table } from './format'
import { dryRunTable, GGUF_FLAG_OPTIONS, parseGgufFlags, pruneLayers } from './gguf-flags'

export const CONVERT: CommandSpec = {
  ...CONVERT_HEADER,
  options: [
    { name: 'out', value: 'PATH', help: 'destination file (gguf) or folder (safetensors); must not exist (required)' },
    {
      name: 'format',
      value: 'FORMAT',
      help: `gguf | safetensors | ${SPARSE_EXPORT_FORMATS.join(' | ')} (required)`,
    },
    { name: 'gguf-type', value: 'TYPE', help: `GGUF type (default F16): ${GGUF_EXPORT_TYPES.join(' ')}` },
    { name: 'name', value: 'NAME', help: 'general.name written into the GGUF (default: the folder name)' },
    {
      name: 'imatrix',
      value: 'FILE',
      help: 'importance matrix (GGUF or legacy .dat, from whittle imatrix or llama-imatrix), used as llama-quantize --imatrix',
    },
    ...GGUF_FLAG_OPTIONS,
    { name: 'threads', value: 'N', help: 'worker threads for the kernels (default: one per core)' },
    { name: 'json', help: 'print one JSON document on stdout (progress stays on stderr)' },
  ],
}

export async function convertCommand(argv: string[]): Promise<number> {
  const args = parseCommand(argv, CONVERT)
  if (args.positionals.length !== 1) throw new UsageError('convert needs exactly one MODEL path')
  if (typeof args.flags.out !== 'string') throw new UsageError('convert needs --out PATH')
  const format = args.flags.format
  if (format !== 'gguf' && format !== 'safetensors' && (typeof format !== 'string' || !isSparseExportFormat(format)))
    throw new UsageError(`convert needs --format gguf, safetensors, ${SPARSE_EXPORT_FORMATS.join(' or ')}`)
  const ggufType = args.flags['gguf-type'] ?? 'F16'
  if (typeof ggufType !== 'string' || !isGgufExportType(ggufType))
    throw new UsageError(`--gguf-type must be one of ${GGUF_EXPORT_TYPES.join(', ')}`)
  if (format !== 'gguf' && args.flags['gguf-type'] !== undefined)
    throw new UsageError('--gguf-type applies to --format gguf only')
  const gguf = parseGgufFlags(args.flags, format === 'gguf')
  if (format !== 'gguf' && gguf.pruneLayers) throw new UsageError('--prune-layers applies to --format gguf only')
  const out = path.resolve(args.flags.out)
  if (args.flags.imatrix !== undefined && (format !== 'gguf' || typeof args.flags.imatrix !== 'string'))
    throw new UsageError('--imatrix FILE applies to --format gguf only')
  // Read before the model, so a bad imatrix file fails at once.
  const imatrixFile = typeof args.flags.imatrix === 'string' ? args.flags.imatrix : null
  const imatrix =
    imatrixFile === null
      ? null
      : { imatrix: (await readImatrixFile(path.resolve(imatrixFile))).imatrix, file: imatrixFile }
  const loaded = await loadModel(path.resolve(args.positionals[0]))
  const model = gguf.pruneLayers ? await pruneLayers(loaded, gguf.pruneLayers) : loaded
  const progress = progressLine(process.stderr)

  if (format === 'safetensors') {
    progress.update(0, 'converting to safetensors')
    const report = await exportSafetensorsFromGguf(model, out)
    progress.done(`written → ${report.dir}`)
    if (args.flags.json) process.stdout.write(JSON.stringify(report, null, 1) + '\n')
    else
      process.stdout.write(
        table(
          ['tensor', 'from', 'dtype'],
          report.tensors.map((t) => [t.name, t.from, t.dequantized ? `${t.dtype} (dequantized)` : t.dtype]),
        ),
      )
    return 0
  }

  if (isSparseExportFormat(format)) {
    const pool = await WorkerPool.create({ threads: intFlag(args, 'threads', 0, 0, 64) || undefined })
    try {
      const result = await exportModel(pool, model, out, { format, onProgress: progress.update })
      progress.done(`written and verified → ${result.out}: ${result.verified}`)
      if (args.flags.json) process.stdout.write(JSON.stringify(result, null, 1) + '\n')
      else
        process.stdout.write(
          table(
            ['file', 'size'],
            result.files.map((f) => [f.name, formatBytes(f.bytes)]),
          ),
        )
    } finally {
      await pool.close()
    }
    return 0
  }

  if (gguf.dryRun) {
    const plan = planGgufExport(model, { ...gguf.flags, type: ggufType })
    if (args.flags.json) process.stdout.write(JSON.stringify({ dryRun: true, type: ggufType, ...plan }, null, 1) + '\n')
    else process.stdout.write(dryRunTable(plan, ggufType))
    return 0
  }
  const pool = await WorkerPool.create({ threads: intFlag(args, 'threads', 0, 0, 64) || undefined })
  try {
    const name = typeof args.flags.name === 'string' ? args.flags.name : undefined
    const report = await exportGguf(pool, model, out, {
      ...gguf.flags,
      type: ggufType,
      name,
      imatrix,
      onProgress: progress.update,
    })
    progress.done(`written and verified → ${report.file} (${formatBytes(report.bytes)})`)
    for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`)
    if (args.flags.json) process.stdout.write(JSON.stringify(report, null, 1) + '\n')
    else {
      process.stdout.write(
        table(
          ['tensor', 'type', 'rule', 'note'],
          report.tensors.map((t) => [
            t.name,
            t.type,
            t.rule,
            [t.imatrix ? 'imatrix' : '', t.fallback ?? ''].filter(Boolean).join('; '),
          ]),
        ),
      )
      if (report.skipped.length > 0) process.stdout.write(`left out (no GGUF slot): ${report.skipped.join(', ')}\n`)
    }
    return 0
  } finally {
    await pool.close()
  }
}
