// Which ggml type each tensor of a GGUF export gets, and the rule that decided it — llama-quantize's
// llama_tensor_get_type with its type-level flags, in llama.cpp's order of precedence:
//   1. tensors llama.cpp never quantizes (1-D, norms; output.weight under --leave-output-tensor);
//   2. --token-embedding-type / --output-tensor-type for those two tensors;
//   3. an export to F32/F16/BF16: every 2-D tensor gets it;
//   4. the first --tensor-type pattern that finds the tensor's GGUF name;
//   5. a pure type (or a mix with --pure): the base type; otherwise the mix's rules (type-policy-rules);
//   6. a row that is not a whole number of the chosen type's blocks falls back (llama.cpp's table).
// Steps 4 to 6 run only for quantized export types, as in llama.cpp. The mix rules read counters that
// llama.cpp advances while it walks the tensors sorted by layer, then name; planGgufTypes walks them in
// that order too, so a plan is the same whatever order the caller lists the tensors in.

import type { TensorRole } from '../../../contract/api'
import {
  GGUF_EXPORT_TYPES,
  GGUF_MIX_BASE,
  GGUF_TENSOR_TYPES,
  type GgufExportType,
  type GgufMix,
  type GgufTensorPlan,
  type GgufTensorTypeName,
  type GgufTypeFlags,
  type GgufTypeRule,
} from '../../../contract/gguf-export-types'
import { WhittleError } from '../../errors'
import { ggmlTypeByName } from '../../formats/ggml-types'
import {
  blockElements,
  fallbackType,
  isAttnVLike,
  mixRule,
  tensorCategory,
  type PolicyCounters,
  type PolicyModel,
} from './type-policy-rules'

export { GGUF_EXPORT_TYPES, type GgufExportType } from '../../../contract/gguf-export-types'
export { useMoreBits, type PolicyModel } from './type-policy-rules'

/** What a tensor is stored as. */
export type GgufTensorType = GgufTensorTypeName

/**
 * llama.cpp's LLAMA_FTYPE ids (include/llama.h), written as general.file_type. A pure Q4_K file is labelled
 * Q4_K_M (15), a pure Q5_K file Q5_K_M (17), a pure Q3_K file Q3_K_M (12) and a pure Q6_K file 18, as
 * llama-quantize labels them (checked against the golden files).
 */
export const LLAMA_FILE_TYPE: Readonly<Record<GgufExportType, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q2_K_MIX: 10,
  Q3_K_S: 11,
  Q3_K: 12,
  Q3_K_M: 12,
  Q3_K_L: 13,
  Q4_K_S: 14,
  Q4_K_M: 15,
  Q4_K: 15,
  Q5_K_S: 16,
  Q5_K: 17,
  Q5_K_M: 17,
  Q6_K: 18,
  IQ4_NL: 25,
  IQ4_XS: 30,
  BF16: 32,
  TQ1_0: 36,
  TQ2_0: 37,
}

export function isGgufExportType(s: string): s is GgufExportType {
  return (GGUF_EXPORT_TYPES as readonly string[]).includes(s)
}

export function isGgufTensorType(s: string): s is GgufTensorTypeName {
  return (GGUF_TENSOR_TYPES as readonly string[]).includes(s)
}

export function isGgufMix(t: GgufExportType): t is GgufMix {
  return Object.hasOwn(GGUF_MIX_BASE, t)
}

/** The type an export starts every tensor from: a pure type itself, a mix its base type. */
export function baseType(t: GgufExportType): GgufTensorTypeName {
  return isGgufMix(t) ? GGUF_MIX_BASE[t] : t
}

const UNQUANTIZED: readonly GgufTensorTypeName[] = ['F32', 'F16', 'BF16']

/** Bytes of `rows` rows of `cols` elements in `type` (cols a whole number of its blocks). */
export function ggufTensorBytes(type: GgufTensorTypeName, rows: number, cols: number): number {
  const info = ggmlTypeByName(type)
  if (!info) throw new WhittleError('unsupported', null, `no ggml block geometry for ${type}`)
  return rows * (cols / info.blockElements) * info.blockBytes
}

/** One tensor as the policy sees it. */
export interface PolicyTensor {
  /** GGUF name (blk.0.attn_v.weight). */
  name: string
  /** Number of dimensions; 1-D tensors are never quantized. */
  rank: number
  rows: number
  /** Elements per row (ggml's ne[0]): blocks run along it. */
  cols: number
  /** The source's dtype, kept by --leave-output-tensor where GGUF can store it. */
  sourceType: string
}

export interface GgufPlanOptions extends GgufTypeFlags {
  type: GgufExportType
}

function checkOptions(o: GgufPlanOptions): RegExp[] {
  if (!isGgufExportType(o.type)) {
    throw new WhittleError(
      'validation',
      null,
      `unknown GGUF export type ${String(o.type)} (choose one of ${GGUF_EXPORT_TYPES.join(', ')})`,
    )
  }
  for (const [what, t] of [
    ['output tensor type', o.outputTensorType],
    ['token embedding type', o.tokenEmbeddingType],
  ] as const) {
    if (t !== undefined && !isGgufTensorType(t))
      throw new WhittleError(
        'validation',
        null,
        `unknown ${what} ${String(t)} (choose one of ${GGUF_TENSOR_TYPES.join(', ')})`,
      )
  }
  return (o.tensorTypes ?? []).map((tt) => {
    if (!isGgufTensorType(tt.type))
      throw new WhittleError(
        'validation',
        null,
        `tensor type override "${tt.pattern}": unknown type ${String(tt.type)} (choose one of ${GGUF_TENSOR_TYPES.join(', ')})`,
      )
    try {
      return new RegExp(tt.pattern)
    } catch {
      throw new WhittleError(
        'validation',
        null,
        `tensor type override "${tt.pattern}" is not a valid regular expression`,
      )
    }
  })
}

/** llama.cpp's tensor_allows_quantization, for the tensors a Llama GGUF holds. */
function allowsQuantization(t: PolicyTensor, o: GgufPlanOptions): boolean {
  if (t.rank < 2) return false
  if (!t.name.endsWith('weight') || t.name.includes('_norm.weight')) return false
  return !(o.leaveOutputTensor && t.name === 'output.weight')
}

/** layer (or -1), then name: the order llama.cpp's loader sorts tensors in (weight_name_comparer). */
function llamaOrder(a: PolicyTensor, b: PolicyTensor): number {
  const layer = (n: string): number => {
    const m = /^blk\.(\d+)\./.exec(n)
    return m ? Number(m[1]) : -1
  }
  return layer(a.name) - layer(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

function choose(
  t: PolicyTensor,
  o: GgufPlanOptions,
  patterns: RegExp[],
  m: PolicyModel,
  k: PolicyCounters,
): { type: GgufTensorTypeName; rule: GgufTypeRule; pattern?: string } {
  if (!allowsQuantization(t, o)) {
    if (t.rank >= 2 && o.leaveOutputTensor && t.name === 'output.weight') {
      return { type: isGgufTensorType(t.sourceType) ? t.sourceType : 'F32', rule: 'leave-output' }
    }
    return { type: 'F32', rule: 'not-quantized' }
  }
  const category = tensorCategory(t.name)
  if (o.tokenEmbeddingType && category === 'token_embd')
    return { type: o.tokenEmbeddingType, rule: 'token-embedding-type' }
  if (o.outputTensorType && category === 'output') return { type: o.outputTensorType, rule: 'output-tensor-type' }
  const base = baseType(o.type)
  if (UNQUANTIZED.includes(base)) return { type: base, rule: 'pure' }
  const hit = patterns.findIndex((p) => p.test(t.name))
  if (hit >= 0) return { type: o.tensorTypes![hit].type, rule: 'tensor-type', pattern: o.tensorTypes![hit].pattern }
  if (!isGgufMix(o.type) || o.pure) return { type: base, rule: 'pure' }
  return mixRule(o.type, t.name, t.cols, m, k)
}

/**
 * Every tensor's type, the rule that chose it, any fallback, and its size; in the order given.
 * Throws a 'validation' WhittleError for an unknown type or a bad --tensor-type pattern.
 */
export function planGgufTypes(
  tensors: readonly PolicyTensor[],
  model: PolicyModel,
  options: GgufPlanOptions,
): GgufTensorPlan[] {
  const patterns = checkOptions(options)
  const counters: PolicyCounters = {
    nAttentionWv: tensors.filter((t) => isAttnVLike(tensorCategory(t.name))).length,
    iAttentionWv: 0,
    iFfnDown: 0,
  }
  const plans = new Map<PolicyTensor, GgufTensorPlan>()
  for (const t of [...tensors].sort(llamaOrder)) {
    const chosen = choose(t, options, patterns, model, counters)
    const fitted = fallbackType(chosen.type, t.cols)
    const elements = t.rows * t.cols
    const bytes = ggufTensorBytes(fitted.type, t.rows, t.cols)
    plans.set(t, {
      name: t.name,
      type: fitted.type,
      rule: chosen.rule,
      ...(chosen.pattern !== undefined ? { pattern: chosen.pattern } : {}),
      ...(fitted.reason ? { fallback: { from: chosen.type, reason: fitted.reason } } : {}),
      elements,
      bytes,
      bitsPerWeight: elements > 0 ? (bytes * 8) / elements : 0,
    })
  }
  return tensors.map((t) => plans.get(t)!)
}

/** The GGUF name part of each role a Llama block or its ends hold, for policyType's synthetic names. */
const ROLE_NAMES: Partial<Record<TensorRole, string>> = {
  embed: 'token_embd',
  lm_head: 'output',
  q: 'attn_q',
  k: 'attn_k',
  v: 'attn_v',
  o: 'attn_output',
  gate: 'ffn_gate',
  up: 'ffn_up',
  down: 'ffn_down',
  attn_norm: 'attn_norm',
  ffn_norm: 'ffn_norm',
  final_norm: 'output_norm',
}

export interface TensorForPolicy {
  role: TensorRole
  layer: number | null
  /** Number of dimensions (PyTorch order); 1-D tensors are never quantized. */
  rank: number
}

/**
 * The type one tensor of a dense Llama with `layers` layers (every one holding attn_v and ffn_down) asks
 * for, before any block-size fallback: a shortcut over planGgufTypes for callers that know only a role.
 */
export function policyType(exportType: GgufExportType, t: TensorForPolicy, layers: number): GgufTensorType {
  const part = ROLE_NAMES[t.role] ?? t.role
  const name = t.layer === null ? `${part}.weight` : `blk.${t.layer}.${part}.weight`
  const o: GgufPlanOptions = { type: exportType }
  const patterns = checkOptions(o)
  const layer = t.layer ?? 0
  const cols = blockElements('Q6_K') // a row every type's blocks fit: no fallback
  const counters: PolicyCounters = { nAttentionWv: layers, iAttentionWv: layer, iFfnDown: layer }
  return choose(
    { name, rank: t.rank, rows: 1, cols, sourceType: 'F32' },
    o,
    patterns,
    { layers, heads: 1, kvHeads: 1, experts: 1 },
    counters,
  ).type
}
