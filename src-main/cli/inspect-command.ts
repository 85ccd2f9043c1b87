// `whittle inspect PATH [--json]`: the architecture summary and a per-tensor table from a full scan.
// Progress goes to stderr so stdout stays a clean table or one JSON document.

import path from 'node:path'
import type { ModelSummary, ScanCell } from '../contract/api'
import { scanModel } from '../engine/inspect/model-scan'
import { loadModel, tensorsByLayer } from '../engine/model/loaded-model'
import { WorkerPool } from '../engine/pool/worker-pool'
import { intFlag, numFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { INSPECT_HEADER } from './command-headers'
import { formatBytes, formatCount, progressLine, table } from './format'

export const INSPECT: CommandSpec = {
  ...INSPECT_HEADER,
  options: [
    {
      name: 'k',
      value: 'K',
      help: 'an input channel is an outlier when its absmax exceeds K × the median (default 6)',
    },
    { name: 'threads', value: 'N', help: 'worker threads for the kernels (default: one per core)' },
    { name: 'json', help: 'print one JSON document on stdout (progress stays on stderr)' },
  ],
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const args = parseCommand(argv, INSPECT)
  if (args.positionals.length !== 1) throw new UsageError('inspect needs exactly one PATH')
  const k = numFlag(args, 'k', 6, 1, 1000)
  const threads = intFlag(args, 'threads', 0, 0, 64) || undefined
  const model = await loadModel(path.resolve(args.positionals[0]))
  const pool = await WorkerPool.create({ threads })
  const progress = progressLine(process.stderr)
  try {
    const scan = await scanModel(pool, model.id, tensorsByLayer(model), { k, onProgress: progress.update })
    progress.done(`scanned ${formatBytes(scan.bytes)} in ${scan.seconds.toFixed(2)} s`)
    const rows = scan.cells.map((cell) => {
      const info = model.tensors.find((t) => t.name === cell.name)!
      return { ...cell, shape: info.shape, dtype: info.dtype }
    })
    if (args.flags.json) {
      process.stdout.write(
        JSON.stringify({ model: model.summary, k, tensors: rows.map(jsonRow), seconds: scan.seconds }, null, 1) + '\n',
      )
    } else {
      process.stdout.write(summaryText(model.summary) + '\n')
      process.stdout.write(
        table(
          ['name', 'role', 'layer', 'shape', 'dtype', 'absmax', 'std', 'kurtosis', `outliers(k=${k})`],
          rows.map((r) => [
            r.name,
            r.role,
            r.layer === null ? '-' : String(r.layer),
            r.shape.join('x'),
            r.dtype,
            r.absmax.toPrecision(4),
            r.std.toPrecision(4),
            r.kurtosis.toFixed(2),
            r.channels ? `${r.outlierChannels}/${r.channels}` : '-',
          ]),
        ),
      )
    }
    return 0
  } finally {
    await pool.close()
  }
}

function jsonRow(r: ScanCell & { shape: number[]; dtype: string }): Record<string, unknown> {
  return {
    name: r.name,
    role: r.role,
    layer: r.layer,
    shape: r.shape,
    dtype: r.dtype,
    absmax: r.absmax,
    std: r.std,
    kurtosis: r.kurtosis,
    outlierChannels: r.outlierChannels,
    channels: r.channels,
  }
}

export function summaryText(s: ModelSummary): string {
  const dtypes = Object.entries(s.dtypes)
    .map(([d, n]) => `${d}×${n}`)
    .join(' ')
  return [
    `model        ${s.path}`,
    `format       ${s.format}${s.quantization ? ` · ${s.quantization}` : ''}`,
    `architecture ${s.architecture} (${s.declaredArchitecture})`,
    `layers       ${s.layers}   hidden ${s.hiddenSize}   heads ${s.heads}   kv heads ${s.kvHeads}   head dim ${s.headDim}   ffn ${s.intermediateSize}   vocab ${s.vocabSize}`,
    `parameters   ${formatCount(s.parameterCount)} (${s.parameterCount})   tensors ${s.tensorCount}   dtypes ${dtypes}`,
    `size on disk ${formatBytes(s.sizeOnDisk)}`,
    ...s.warnings.map((w) => `warning      ${w}`),
    '',
  ].join('\n')
}
