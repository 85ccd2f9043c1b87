// Generates a synthetic model from the command line:
//   npx tsx src-main/engine/synthetic/cli.ts --preset tinyllama-1.1b --dtype BF16 --out DIR
//     [--seed N] [--shard-bytes N] [--outlier-channels N] [--outlier-scale X] [--force]
// A folder already holding the same complete model is left alone.

import { parseArgs } from 'node:util'
import { describeError } from '../errors'
import { generateLlamaModel, type SyntheticDType } from './generate'
import { PRESETS, isPresetName } from './presets'

const USAGE = `usage: cli.ts --preset <${Object.keys(PRESETS).join('|')}> --dtype <F32|BF16|F16> --out DIR
       [--seed N] [--shard-bytes N] [--outlier-channels N] [--outlier-scale X] [--force]`

function number(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${flag} must be a number, not '${text}'`)
  return n
}

export async function main(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        preset: { type: 'string' },
        dtype: { type: 'string', default: 'BF16' },
        out: { type: 'string' },
        seed: { type: 'string', default: '1' },
        'shard-bytes': { type: 'string' },
        'outlier-channels': { type: 'string' },
        'outlier-scale': { type: 'string' },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values
  } catch (e) {
    console.error(`${describeError(e)}\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const preset = values.preset
  const dtype = values.dtype?.toUpperCase()
  if (!preset || !isPresetName(preset) || !values.out || (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16')) {
    console.error(USAGE)
    return 2
  }
  try {
    const outlierChannels = number('outlier-channels', values['outlier-channels'])
    const outlierScale = number('outlier-scale', values['outlier-scale'])
    let lastShown = -1
    const result = await generateLlamaModel(values.out, preset, {
      dtype: dtype as SyntheticDType,
      seed: number('seed', values.seed) ?? 1,
      shardBytes: number('shard-bytes', values['shard-bytes']),
      outliers: {
        ...(outlierChannels !== undefined ? { channelsPerLayer: outlierChannels } : {}),
        ...(outlierScale !== undefined ? { scale: outlierScale } : {}),
      },
      force: values.force,
      onProgress: (fraction, message) => {
        const percent = Math.floor(fraction * 100)
        if (percent === lastShown) return
        lastShown = percent
        process.stderr.write(`\r${String(percent).padStart(3)}% ${message.slice(0, 70).padEnd(70)}`)
      },
    })
    if (lastShown >= 0) process.stderr.write('\n')
    const size =
      result.tensorBytes >= 1e9
        ? `${(result.tensorBytes / 1e9).toFixed(2)} GB`
        : `${(result.tensorBytes / 1e6).toFixed(2)} MB`
    console.log(
      result.skipped
        ? `${result.dir} already holds ${preset} ${dtype} (seed ${values.seed}); nothing to do`
        : `wrote ${preset} ${dtype} to ${result.dir}: ${result.files.join(', ')} (${size} of tensors)`,
    )
    return 0
  } catch (e) {
    console.error(describeError(e))
    return 1
  }
}

// Run only when executed directly, so tests can import main().
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code
  })
}
