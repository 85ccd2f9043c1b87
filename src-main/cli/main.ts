// The CLI's entry: dispatch to one command module per verb. Exit codes: 0 ok, 1 failure, 2 usage.

import { describeError } from '../engine/errors'
import { UsageError } from './args'
import { compressCommand } from './compress-command'
import { convertCommand } from './convert-command'
import { evalCommand } from './eval-command'
import { inspectCommand } from './inspect-command'
import { serveCommand } from './serve-command'

const USAGE = `usage: whittle <command> [options]

commands:
  inspect PATH [--json] [--k 6] [--threads N]   architecture summary and a per-tensor table
  eval MODEL --text FILE [--seqlen 256] [--json]
                                                perplexity: non-overlapping windows, one BOS
  compress MODEL --recipe FILE --out DIR [--eval FILE] [--seqlen 256] [--json]
                                                run a compression recipe, measure it, write the result
  convert MODEL --out PATH --format gguf|safetensors [--gguf-type Q8_0]
                                                lossless and quantize-only conversions (no calibration)
  serve [--model PATH] [--port N] [--host H] [--allow-remote]
                                                web mode: the app in your browser, engine here
`

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'inspect': return await inspectCommand(rest)
      case 'eval': return await evalCommand(rest)
      case 'compress': return await compressCommand(rest)
      case 'convert': return await convertCommand(rest)
      case 'serve': return await serveCommand(rest)
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(USAGE)
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command ${command}`)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`whittle: ${e.message}\n\n${USAGE}`)
      return 2
    }
    process.stderr.write(`whittle: ${describeError(e)}\n`)
    return 1
  }
}
