// Each CLI command declares its options once, here-shaped: the parser, `whittle CMD --help` and the
// top-level usage are all derived from that one declaration, so help can never leave an option out.

import { parseArgs, type ParsedArgs } from './args'

export interface OptionSpec {
  name: string
  /** Placeholder for the value (FILE, N, …); absent for a boolean flag. */
  value?: string
  help: string
}

export interface CommandSpec {
  name: string
  /** Positional arguments as shown in the synopsis, e.g. 'MODEL'. */
  args: string
  summary: string
  options: OptionSpec[]
  /** Extra lines printed after the options (defaults, examples). */
  notes?: string[]
}

/** Thrown when the user asked for a command's help; main prints it and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly spec: CommandSpec) {
    super(`help for ${spec.name}`)
  }
}

/** Parses argv against the command's declared options; `--help`/`-h` anywhere asks for its usage. */
export function parseCommand(argv: string[], spec: CommandSpec): ParsedArgs {
  if (argv.includes('--help') || argv.includes('-h')) throw new HelpRequested(spec)
  return parseArgs(argv, {
    values: spec.options.filter((o) => o.value !== undefined).map((o) => o.name),
    booleans: spec.options.filter((o) => o.value === undefined).map((o) => o.name),
  })
}

function optionLabel(o: OptionSpec): string {
  return o.value === undefined ? `--${o.name}` : `--${o.name} ${o.value}`
}

/** The full usage of one command: synopsis, summary, every option with its help. */
export function commandUsage(spec: CommandSpec): string {
  const width = Math.max(...spec.options.map((o) => optionLabel(o).length), 8)
  const lines = [
    `usage: whittle ${spec.name}${spec.args ? ` ${spec.args}` : ''} [options]`,
    '',
    spec.summary,
    '',
    'options:',
    ...spec.options.map((o) => `  ${optionLabel(o).padEnd(width)}  ${o.help}`),
    `  ${'--help'.padEnd(width)}  print this help`,
  ]
  if (spec.notes?.length) lines.push('', ...spec.notes)
  return lines.join('\n') + '\n'
}

/** One line per command for the top-level usage. */
export function commandLine(spec: CommandSpec): string {
  return `  ${`${spec.name} ${spec.args}`.trim().padEnd(22)}  ${spec.summary.split('\n')[0]}`
}
