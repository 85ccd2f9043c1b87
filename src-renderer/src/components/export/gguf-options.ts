// The Export dialog's GGUF options, as llama-quantize's type-level flags: the form's fields, the flags they
// make (or the problem with them), the per-tensor override a click in the mix table adds, and the summary of
// fallbacks the dialog warns about before export.

import {
  parseTensorTypeOverrides,
  type GgufExportPlan,
  type GgufTensorTypeName,
  type GgufTypeFlags,
} from '@contract/gguf-export-types'

export interface GgufOptionsForm {
  pure: boolean
  /** '' = the policy decides. */
  outputTensorType: '' | GgufTensorTypeName
  tokenEmbeddingType: '' | GgufTensorTypeName
  leaveOutputTensor: boolean
  allowRequantize: boolean
  /** PATTERN=TYPE items, one a line (or comma-separated), as llama-quantize's --tensor-type. */
  tensorTypes: string
}

export function emptyGgufOptions(): GgufOptionsForm {
  return {
    pure: false,
    outputTensorType: '',
    tokenEmbeddingType: '',
    leaveOutputTensor: false,
    allowRequantize: false,
    tensorTypes: '',
  }
}

/** The flags the form asks for (only those set), or the problem that stops an export. */
export function ggufFlagsFrom(f: GgufOptionsForm): { flags: GgufTypeFlags } | { problem: string } {
  const flags: GgufTypeFlags = {}
  if (f.pure) flags.pure = true
  if (f.leaveOutputTensor && f.outputTensorType)
    return { problem: 'keep output.weight as it is, or give it a type: not both' }
  if (f.leaveOutputTensor) flags.leaveOutputTensor = true
  if (f.outputTensorType) flags.outputTensorType = f.outputTensorType
  if (f.tokenEmbeddingType) flags.tokenEmbeddingType = f.tokenEmbeddingType
  if (f.allowRequantize) flags.allowRequantize = true
  const parsed = parseTensorTypeOverrides(f.tensorTypes)
  if ('problem' in parsed) return { problem: `per-tensor types: ${parsed.problem}` }
  if (parsed.overrides.length > 0) flags.tensorTypes = parsed.overrides
  return { flags }
}

/** A pattern that finds exactly this tensor name. */
export function exactPattern(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`
}

/**
 * The per-tensor lines with `name` set to `type` (a click in the mix table): its exact line replaced or,
 * new, put first, since the first matching pattern wins.
 */
export function withTensorOverride(lines: string, name: string, type: GgufTensorTypeName): string {
  const pattern = exactPattern(name)
  const kept = lines
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith(`${pattern}=`))
  return [`${pattern}=${type}`, ...kept].join('\n')
}

export interface FallbackSummary {
  count: number
  total: number
  /** Most tensors fall back: the export type hardly applies to this model; warn before export. */
  most: boolean
  /** "Q4_K → Q5_0 ×12" lines. */
  pairs: string[]
}

export function fallbackSummary(plan: GgufExportPlan): FallbackSummary {
  const quantizable = plan.tensors.filter((t) => t.rule !== 'not-quantized')
  const fell = quantizable.filter((t) => t.fallback)
  const counts = new Map<string, number>()
  for (const t of fell) {
    const key = `${t.fallback!.from} → ${t.type}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return {
    count: fell.length,
    total: quantizable.length,
    most: fell.length * 2 > quantizable.length,
    pairs: [...counts].map(([k, n]) => `${k} ×${n}`),
  }
}
