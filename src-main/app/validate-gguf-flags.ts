// The Export dialog's GGUF type flags as they arrive over IPC or the WebSocket: untrusted, so every field
// is checked against the lists in contract/gguf-export-types.ts and unknown keys are refused.

import {
  GGUF_TENSOR_TYPES,
  type GgufTensorTypeName,
  type GgufTensorTypeOverride,
  type GgufTypeFlags,
} from '../contract/gguf-export-types'

/** Bounds on what a request may carry (a pattern list is typed by hand, not generated). */
const MAX_OVERRIDES = 256
const MAX_PATTERN = 512

export function validateGgufFlags(value: unknown, fail: (problem: string) => never): GgufTypeFlags {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail('"gguf" must be an object of GGUF type flags')
  const o = value as Record<string, unknown>
  const known = [
    'pure',
    'outputTensorType',
    'tokenEmbeddingType',
    'leaveOutputTensor',
    'tensorTypes',
    'allowRequantize',
  ]
  const extra = Object.keys(o).find((k) => !known.includes(k))
  if (extra !== undefined) fail(`"gguf.${extra}" is not a GGUF type flag (known: ${known.join(', ')})`)
  const out: GgufTypeFlags = {}
  for (const key of ['pure', 'leaveOutputTensor', 'allowRequantize'] as const) {
    if (o[key] === undefined) continue
    if (typeof o[key] !== 'boolean') fail(`"gguf.${key}" must be true or false`)
    if (o[key]) out[key] = true
  }
  const type = (v: unknown, where: string): GgufTensorTypeName => {
    if (typeof v !== 'string' || !(GGUF_TENSOR_TYPES as readonly string[]).includes(v))
      fail(`"${where}" must be one of ${GGUF_TENSOR_TYPES.join(', ')}`)
    return v as GgufTensorTypeName
  }
  if (o.outputTensorType !== undefined) out.outputTensorType = type(o.outputTensorType, 'gguf.outputTensorType')
  if (o.tokenEmbeddingType !== undefined) out.tokenEmbeddingType = type(o.tokenEmbeddingType, 'gguf.tokenEmbeddingType')
  if (o.tensorTypes !== undefined) {
    if (!Array.isArray(o.tensorTypes) || o.tensorTypes.length > MAX_OVERRIDES)
      fail(`"gguf.tensorTypes" must be a list of at most ${MAX_OVERRIDES} {pattern, type}`)
    out.tensorTypes = o.tensorTypes.map((item: unknown, i): GgufTensorTypeOverride => {
      const where = `gguf.tensorTypes[${i}]`
      if (typeof item !== 'object' || item === null) fail(`"${where}" must be {pattern, type}`)
      const { pattern, type: t, ...rest } = item as Record<string, unknown>
      if (Object.keys(rest).length > 0) fail(`"${where}" has unknown keys ${Object.keys(rest).join(', ')}`)
      if (typeof pattern !== 'string' || pattern === '' || pattern.length > MAX_PATTERN)
        fail(`"${where}.pattern" must be a regular expression of 1 to ${MAX_PATTERN} characters`)
      try {
        new RegExp(pattern)
      } catch {
        fail(`"${where}.pattern" is not a valid regular expression`)
      }
      return { pattern, type: type(t, `${where}.type`) }
    })
  }
  return out
}
