// llama-quantize's type-level flags, declared once for `whittle convert --format gguf` and
// `whittle compress --format gguf`, so that a llama-quantize command line translates option for option:
//   --pure, --output-tensor-type T, --token-embedding-type T, --leave-output-tensor,
//   --tensor-type PATTERN=T (repeatable as a comma list), --prune-layers L,L,…, --dry-run, --allow-requantize.
// Type names are accepted in either case (llama-quantize users write q8_0).

import {
  GGUF_TENSOR_TYPES,
  GGUF_TYPE_RULES,
  parseTensorTypeOverrides,
  tensorTypeNamed,
  type GgufTensorPlan,
  type GgufTensorTypeName,
  type GgufTensorTypeOverride,
  type GgufTypeFlags,
} from '../contract/gguf-export-types'
import { restructureModel } from '../engine/compress/structure/restructure'
import type { LoadedModel } from '../engine/model/loaded-model'
import { withReplacements } from '../engine/model/model-view'
import { UsageError } from './args'
import type { OptionSpec } from './command-spec'
import { formatBytes, table } from './format'

export const GGUF_FLAG_OPTIONS: OptionSpec[] = [
  {
    name: 'pure',
    help: "gguf: every quantized tensor gets the type's base type, no mix rules (llama-quantize --pure)",
  },
  { name: 'output-tensor-type', value: 'TYPE', help: 'gguf: type of output.weight' },
  { name: 'token-embedding-type', value: 'TYPE', help: 'gguf: type of token_embd.weight' },
  { name: 'leave-output-tensor', help: 'gguf: keep output.weight in its source type' },
  {
    name: 'tensor-type',
    value: 'PATTERN=TYPE[,…]',
    help: 'gguf: tensors whose GGUF name the regular expression finds get TYPE; first match wins',
  },
  {
    name: 'prune-layers',
    value: 'L,L,…',
    help: 'drop these decoder layers before quantizing (a drop_layers step); the rest are renumbered',
  },
  { name: 'dry-run', help: "gguf: print each tensor's type, the rule that chose it and its size; write nothing" },
  {
    name: 'allow-requantize',
    help: 'gguf: allow re-quantizing tensors that are already quantized (a second rounding loss); refused otherwise',
  },
]

/** Flags that only make sense for a GGUF export (--prune-layers applies to any output). */
const GGUF_ONLY = GGUF_FLAG_OPTIONS.map((o) => o.name).filter((n) => n !== 'prune-layers')

export interface GgufCliFlags {
  flags: GgufTypeFlags
  dryRun: boolean
  /** Layers to drop, or null. */
  pruneLayers: number[] | null
}

function tensorType(value: string, flag: string): GgufTensorTypeName {
  const t = tensorTypeNamed(value)
  if (!t) throw new UsageError(`${flag}: unknown type "${value}" (one of ${GGUF_TENSOR_TYPES.join(', ')})`)
  return t
}

function stringFlag(flags: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const v = flags[name]
  if (v === undefined) return undefined
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`)
  return v
}

function parseTensorTypes(value: string): GgufTensorTypeOverride[] {
  const parsed = parseTensorTypeOverrides(value)
  if ('problem' in parsed) throw new UsageError(`--tensor-type: ${parsed.problem}`)
  return parsed.overrides
}

function parseLayers(value: string): number[] {
  const layers = value.split(',').map((s) => s.trim())
  if (layers.some((s) => !/^\d+$/.test(s)))
    throw new UsageError(`--prune-layers: "${value}" is not a comma list of layer numbers`)
  return [...new Set(layers.map(Number))].sort((a, b) => a - b)
}

/** The GGUF flags of a parsed command line; `gguf` says whether the output is GGUF (others are refused if not). */
export function parseGgufFlags(flags: Record<string, string | boolean | undefined>, gguf: boolean): GgufCliFlags {
  if (!gguf) {
    const given = GGUF_ONLY.filter((n) => flags[n] !== undefined)
    if (given.length > 0) throw new UsageError(`--${given[0]} applies to --format gguf only`)
  }
  const out: GgufTypeFlags = {}
  if (flags.pure) out.pure = true
  if (flags['leave-output-tensor']) out.leaveOutputTensor = true
  if (flags['allow-requantize']) out.allowRequantize = true
  const output = stringFlag(flags, 'output-tensor-type')
  if (output !== undefined) out.outputTensorType = tensorType(output, '--output-tensor-type')
  const embd = stringFlag(flags, 'token-embedding-type')
  if (embd !== undefined) out.tokenEmbeddingType = tensorType(embd, '--token-embedding-type')
  if (out.leaveOutputTensor && out.outputTensorType)
    throw new UsageError('--leave-output-tensor and --output-tensor-type contradict each other; give one')
  const tt = stringFlag(flags, 'tensor-type')
  if (tt !== undefined) out.tensorTypes = parseTensorTypes(tt)
  const prune = stringFlag(flags, 'prune-layers')
  return { flags: out, dryRun: flags['dry-run'] === true, pruneLayers: prune === undefined ? null : parseLayers(prune) }
}

/** The dry run's table: each tensor's type, rule, size and bits per weight, with totals. */
export function dryRunTable(plan: { tensors: GgufTensorPlan[]; bytes: number }, type: string): string {
  const rows = plan.tensors.map((t) => [
    t.name,
    t.type,
    t.pattern !== undefined ? `tensor-type ${t.pattern}` : t.rule,
    formatBytes(t.bytes),
    t.bitsPerWeight.toFixed(3),
    t.fallback ? `fallback from ${t.fallback.from}` : '',
  ])
  const elements = plan.tensors.reduce((n, t) => n + t.elements, 0)
  const fallbacks = plan.tensors.filter((t) => t.fallback).length
  const rules = [...new Set(plan.tensors.map((t) => t.rule))].map((r) => `  ${r}: ${GGUF_TYPE_RULES[r]}`)
  return (
    table(['tensor', 'type', 'rule', 'size', 'bits/weight', 'note'], rows) +
    `${type}: ${formatBytes(plan.bytes)} of tensor data, ${((plan.bytes * 8) / Math.max(1, elements)).toFixed(3)} bits per weight${fallbacks > 0 ? `; ${fallbacks} of ${plan.tensors.length} tensors fall back (their rows do not fit the type's blocks)` : ''}\n` +
    `rules:\n${rules.join('\n')}\n`
  )
}

/**
 * --prune-layers for `convert`: the model without those decoder layers, the others renumbered — the same
 * restructuring a recipe's drop_layers step does (`compress` adds such a step instead).
 */
export async function pruneLayers(model: LoadedModel, drop: number[]): Promise<LoadedModel> {
  const n = model.arch.layers
  const bad = drop.filter((l) => l >= n)
  if (bad.length > 0)
    throw new UsageError(`--prune-layers: layer ${bad.join(', ')} does not exist (the model has layers 0–${n - 1})`)
  if (drop.length >= n) throw new UsageError(`--prune-layers: dropping all ${n} layers leaves no model`)
  const keepLayers = Array.from({ length: n }, (_, i) => i).filter((i) => !drop.includes(i))
  return (await restructureModel(withReplacements(model), { keepLayers })).view
}
