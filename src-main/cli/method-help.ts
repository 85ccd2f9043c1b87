// `whittle compress --help-method [NAME]`: a method's parameters as its spec declares them (the same
// catalogue the app's forms are built from), or the list of methods.

import { describeDefault, describeRange, type MethodInfo, type ParamSpec } from '../contract/method-params'
import { methodCatalogue, methodInfo } from '../engine/compress/methods'
import type { HelpTopic } from './command-spec'
import { table } from './format'

/** One row per parameter; a nested mapping's fields follow it as `parent.field`. */
function paramRows(params: readonly ParamSpec[], prefix = ''): string[][] {
  return params.flatMap((p) => [
    [`${prefix}${p.name}`, p.type, describeDefault(p), describeRange(p), p.help],
    ...(p.type === 'object' ? paramRows(p.fields, `${prefix}${p.name}.`) : []),
  ])
}

export function methodHelp(m: MethodInfo): string {
  const lines = [
    `${m.name} (${m.kind}${m.needsCalibration ? ', uses calibration' : ''})`,
    m.summary,
    '',
    m.params.length
      ? table(['param', 'type', 'default', 'values', 'help'], paramRows(m.params)).trimEnd()
      : 'no parameters',
    '',
    `in a recipe: steps: [{method: ${m.name}, params: {${m.params
      .filter((p) => p.default !== null)
      .slice(0, 2)
      .map((p) => `${p.name}: ${p.default}`)
      .join(', ')}}}]`,
  ]
  return lines.join('\n') + '\n'
}

export function methodList(): string {
  const rows = methodCatalogue().map((m) => [m.name, m.kind, m.summary])
  return `methods:\n${table(['method', 'kind', 'what it does'], rows)}\nrun 'whittle compress --help-method NAME' for one method's parameters.\n`
}

export const METHOD_HELP: HelpTopic = {
  name: 'help-method',
  value: 'NAME',
  noun: 'method',
  help: "print a compression method's parameters (names, types, defaults, ranges); without NAME, list the methods",
  render: (name) => {
    const m = methodInfo(name)
    return m ? methodHelp(m) : null
  },
  list: methodList,
}
