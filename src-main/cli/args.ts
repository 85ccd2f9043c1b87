// A small argv parser: `--flag`, `--key value`, `--key=value`, positionals. Unknown flags are errors,
// so a typo never silently falls back to a default.

export interface ParsedArgs {
  positionals: string[]
  flags: Record<string, string | true>
}

export class UsageError extends Error {}

export function parseArgs(argv: string[], spec: { values: string[]; booleans: string[] }): ParsedArgs {
  const out: ParsedArgs = { positionals: [], flags: {} }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) {
      out.positionals.push(a)
      continue
    }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2)
    if (spec.booleans.includes(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`)
      out.flags[name] = true
    } else if (spec.values.includes(name)) {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new UsageError(`--${name} needs a value`)
      out.flags[name] = v
    } else {
      throw new UsageError(`unknown option --${name}`)
    }
  }
  return out
}

export function intFlag(args: ParsedArgs, name: string, fallback: number, lo: number, hi: number): number {
  const v = args.flags[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (typeof v !== 'string' || !Number.isInteger(n) || n < lo || n > hi)
    throw new UsageError(`--${name} must be an integer in [${lo}, ${hi}]`)
  return n
}

export function numFlag(args: ParsedArgs, name: string, fallback: number, lo: number, hi: number): number {
  const v = args.flags[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (typeof v !== 'string' || !Number.isFinite(n) || n < lo || n > hi)
    throw new UsageError(`--${name} must be a number in [${lo}, ${hi}]`)
  return n
}
