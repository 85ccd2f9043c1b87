// The CLI's entry: dispatch to one command module per verb.
// Exit codes (stated in the README): 0 ok, 1 the work failed (bad input, I/O, cancelled), 2 usage error.

import { describeError } from '../engine/errors'
import { UsageError } from './args'
import { commandLine, commandUsage, HelpRequested, type CommandSpec } from './command-spec'
import {
  COMPRESS_HEADER,
  CONVERT_HEADER,
  EVAL_HEADER,
  IMATRIX_HEADER,
  INSPECT_HEADER,
  SERVE_HEADER,
  type CommandHeader,
} from './command-headers'

interface Command {
  spec: CommandSpec
  run: (argv: string[]) => Promise<number>
}

// A command's module is imported only when that command runs (or its help is asked for): `whittle --help`
// loads none, `whittle inspect` no compression, export or training code. Start-up is most of a small run.
const COMMANDS: { header: CommandHeader; load: () => Promise<Command> }[] = [
  {
    header: INSPECT_HEADER,
    load: () => import('./inspect-command').then((m) => ({ spec: m.INSPECT, run: m.inspectCommand })),
  },
  { header: EVAL_HEADER, load: () => import('./eval-command').then((m) => ({ spec: m.EVAL, run: m.evalCommand })) },
  {
    header: COMPRESS_HEADER,
    load: () => import('./compress-command').then((m) => ({ spec: m.COMPRESS, run: m.compressCommand })),
  },
  {
    header: CONVERT_HEADER,
    load: () => import('./convert-command').then((m) => ({ spec: m.CONVERT, run: m.convertCommand })),
  },
  {
    header: IMATRIX_HEADER,
    load: () => import('./imatrix-command').then((m) => ({ spec: m.IMATRIX, run: m.imatrixCommand })),
  },
  { header: SERVE_HEADER, load: () => import('./serve-command').then((m) => ({ spec: m.SERVE, run: m.serveCommand })) },
]

export const USAGE = [
  'usage: whittle <command> [options]',
  '',
  'commands:',
  ...COMMANDS.map((c) => commandLine(c.header)),
  '',
  "run 'whittle <command> --help' for a command's options.",
  'exit status: 0 ok, 1 the work failed (the message names the file and the fault), 2 usage error.',
  '',
].join('\n')

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  const command = COMMANDS.find((c) => c.header.name === name)
  try {
    if (command) return await (await command.load()).run(rest)
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      const topic = name === 'help' ? COMMANDS.find((c) => c.header.name === rest[0]) : undefined
      process.stdout.write(topic ? commandUsage((await topic.load()).spec) : USAGE)
      return name === undefined ? 2 : 0
    }
    throw new UsageError(`unknown command ${name}`)
  } catch (e) {
    if (e instanceof HelpRequested) {
      ;(e.status === 0 ? process.stdout : process.stderr).write(e.text ?? commandUsage(e.spec))
      return e.status
    }
    if (e instanceof UsageError) {
      const hint = command ? `run 'whittle ${command.header.name} --help' for its options` : USAGE
      process.stderr.write(`whittle: ${e.message}\n${command ? hint + '\n' : '\n' + hint}`)
      return 2
    }
    process.stderr.write(`whittle: ${describeError(e)}\n`)
    return 1
  }
}
