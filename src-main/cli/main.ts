// The CLI's entry: dispatch to one command module per verb.
// Exit codes (stated in the README): 0 ok, 1 the work failed (bad input, I/O, cancelled), 2 usage error.

import { describeError } from '../engine/errors'
import { UsageError } from './args'
import { commandLine, commandUsage, HelpRequested, type CommandSpec } from './command-spec'
import { COMPRESS, compressCommand } from './compress-command'
import { CONVERT, convertCommand } from './convert-command'
import { IMATRIX, imatrixCommand } from './imatrix-command'
import { EVAL, evalCommand } from './eval-command'
import { INSPECT, inspectCommand } from './inspect-command'
import { SERVE, serveCommand } from './serve-command'

const COMMANDS: { spec: CommandSpec; run: (argv: string[]) => Promise<number> }[] = [
  { spec: INSPECT, run: inspectCommand },
  { spec: EVAL, run: evalCommand },
  { spec: COMPRESS, run: compressCommand },
  { spec: CONVERT, run: convertCommand },
  { spec: IMATRIX, run: imatrixCommand },
  { spec: SERVE, run: serveCommand },
]

export const USAGE = [
  'usage: whittle <command> [options]',
  '',
  'commands:',
  ...COMMANDS.map((c) => commandLine(c.spec)),
  '',
  "run 'whittle <command> --help' for a command's options.",
  'exit status: 0 ok, 1 the work failed (the message names the file and the fault), 2 usage error.',
  '',
].join('\n')

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  const command = COMMANDS.find((c) => c.spec.name === name)
  try {
    if (command) return await command.run(rest)
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      const topic = name === 'help' ? COMMANDS.find((c) => c.spec.name === rest[0]) : undefined
      process.stdout.write(topic ? commandUsage(topic.spec) : USAGE)
      return name === undefined ? 2 : 0
    }
    throw new UsageError(`unknown command ${name}`)
  } catch (e) {
    if (e instanceof HelpRequested) {
      ;(e.status === 0 ? process.stdout : process.stderr).write(e.text ?? commandUsage(e.spec))
      return e.status
    }
    if (e instanceof UsageError) {
      const hint = command ? `run 'whittle ${command.spec.name} --help' for its options` : USAGE
      process.stderr.write(`whittle: ${e.message}\n${command ? hint + '\n' : '\n' + hint}`)
      return 2
    }
    process.stderr.write(`whittle: ${describeError(e)}\n`)
    return 1
  }
}
