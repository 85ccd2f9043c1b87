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
  /** Help on one item instead of running, e.g. `--help-method NAME`. */
  topics?: HelpTopic[]
}

/** A `--help-THING [NAME]` flag: prints one item's help, or the list of items when NAME is absent or unknown. */
export interface HelpTopic {
  /** The flag without dashes, e.g. 'help-method'. */
  name: string
  /** Placeholder for the item's name, e.g. 'NAME'. */
  value: string
  /** What an item is, for "unknown method …". */
  noun: string
  help: string
  /** The item's help text, or null when there is no such item. */
  render(item: string): string | null
  /** The list of items, printed for a missing or unknown name. */
  list(): string
}

/** Thrown when the user asked for a command's help; main prints it and exits 0. */
export class HelpRequested extends Error {
  /** `text`: a topic's help instead of the command's usage; `status` 2 when the topic named no known item. */
  constructor(
    readonly spec: CommandSpec,
    readonly text?: string,
    readonly status: 0 | 2 = 0,
  ) {
    super(`help for ${spec.name}`)
  }
}

/** `--help-THING NAME` or `--help-THING=NAME` anywhere in argv: the topic's answer, or null when not asked. */
function topicHelp(argv: string[], spec: CommandSpec): HelpRequested | null {
  for (const topic of spec.topics ?? []) {
    const flag = `--${topic.name}`
    const at = argv.findIndex((a) => a === flag || a.startsWith(`${flag}=`))
    if (at < 0) continue
    const item = argv[at].startsWith(`${flag}=`)
      ? argv[at].slice(flag.length + 1)
      : argv[at + 1] && !argv[at + 1].startsWith('-')
        ? argv[at + 1]
        : ''
    const text = item ? topic.render(item) : null
    if (text !== null) return new HelpRequested(spec, text)
    return new HelpRequested(spec, `${item ? `unknown ${topic.noun} "${item}"\n\n` : ''}${topic.list()}`, item ? 2 : 0)
  }
  return null
}

/** Parses argv against the command's declared options; `--help`/`-h` anywhere asks for its usage. */
export function parseCommand(argv: string[], spec: CommandSpec): ParsedArgs {
  const topic = topicHelp(argv, spec)
  if (topic) throw topic
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
  const width = Math.max(
    ...spec.options.map((o) => optionLabel(o).length),
    ...(spec.topics ?? []).map((t) => t.name.length + t.value.length + 3),
    8,
  )
  const lines = [
    `usage: whittle ${spec.name}${spec.args ? ` ${spec.args}` : ''} [options]`,
    '',
    spec.summary,
    '',
    'options:',
    ...spec.options.map((o) => `  ${optionLabel(o).padEnd(width)}  ${o.help}`),
    ...(spec.topics ?? []).map((t) => `  ${`--${t.name} ${t.value}`.padEnd(width)}  ${t.help}`),
    `  ${'--help'.padEnd(width)}  print this help`,
  ]
  if (spec.notes?.length) lines.push('', ...spec.notes)
  return lines.join('\n') + '\n'
}

/** One line per command for the top-level usage. */
export function commandLine(spec: Pick<CommandSpec, 'name' | 'args' | 'summary'>): string {
  return `  ${`${spec.name} ${spec.args}`.trim().padEnd(22)}  ${spec.summary.split('\n')[0]}`
}
