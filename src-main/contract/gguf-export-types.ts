// The GGUF types an export can ask for, declared once: the engine's type policy, the CLI's --gguf-type
// and the Export dialog all read these lists.
//
// - A tensor type (F32 … TQ1_0) names one storage type; asked for as an export type it is pure: every
//   2-D weight gets it (llama-quantize --pure). Q6_K is also llama.cpp's Q6_K mix, which for a Llama
//   chooses exactly the pure types.
// - A mix is one of llama.cpp's file types whose per-tensor policy (llama_tensor_get_type) upgrades
//   some tensors above its base type. llama-quantize names its Q2_K mix plain "Q2_K"; here that name
//   already means the pure type, so the mix is Q2_K_MIX (it writes llama.cpp's file type 10 all the same).

/** Every quantized block type Whittle writes byte-identically to llama-quantize (declared once: the gguf step,
 * the quantizers and the export all derive their lists from this one). */
export const GGUF_QUANT_TYPES = [
  'Q8_0',
  'Q6_K',
  'Q5_1',
  'Q5_0',
  'Q5_K',
  'Q4_1',
  'Q4_0',
  'Q4_K',
  'IQ4_NL',
  'IQ4_XS',
  'Q3_K',
  'Q2_K',
  'TQ2_0',
  'TQ1_0',
] as const
export type GgufQuantType = (typeof GGUF_QUANT_TYPES)[number]

/** Every type a GGUF tensor can be stored as here, and so every pure export type. */
export const GGUF_TENSOR_TYPES = ['F32', 'F16', 'BF16', ...GGUF_QUANT_TYPES] as const
export type GgufTensorTypeName = (typeof GGUF_TENSOR_TYPES)[number]

/** llama.cpp's mixes and the base type each starts from (llama_ftype_get_default_type). */
export const GGUF_MIX_BASE = {
  Q5_K_M: 'Q5_K',
  Q5_K_S: 'Q5_K',
  Q4_K_M: 'Q4_K',
  Q4_K_S: 'Q4_K',
  Q3_K_L: 'Q3_K',
  Q3_K_M: 'Q3_K',
  Q3_K_S: 'Q3_K',
  Q2_K_MIX: 'Q2_K',
} as const satisfies Record<string, GgufTensorTypeName>
export type GgufMix = keyof typeof GGUF_MIX_BASE
export const GGUF_MIXES = Object.keys(GGUF_MIX_BASE) as GgufMix[]

export const GGUF_EXPORT_TYPES = [...GGUF_TENSOR_TYPES, ...GGUF_MIXES] as const
export type GgufExportType = GgufTensorTypeName | GgufMix

/** One `--tensor-type PATTERN=TYPE`: tensors whose GGUF name the regular expression finds get TYPE. */
export interface GgufTensorTypeOverride {
  pattern: string
  type: GgufTensorTypeName
}

/** llama-quantize's type-level flags, as the CLI and the Export dialog pass them. */
export interface GgufTypeFlags {
  /** Every quantized tensor gets the mix's base type (--pure); pure types are pure anyway. */
  pure?: boolean
  /** output.weight's type (--output-tensor-type). */
  outputTensorType?: GgufTensorTypeName
  /** token_embd.weight's type (--token-embedding-type). */
  tokenEmbeddingType?: GgufTensorTypeName
  /** output.weight keeps the source's type (--leave-output-tensor). */
  leaveOutputTensor?: boolean
  /** Per-tensor types by name pattern, first match wins (--tensor-type). */
  tensorTypes?: readonly GgufTensorTypeOverride[]
  /** Re-quantizing tensors that are already in a block type is allowed, with a warning (--allow-requantize). */
  allowRequantize?: boolean
}

/**
 * Why a tensor got its type: each rule of llama.cpp's policy has a name, so the export, the dry run and
 * the mix table can say which one fired. The descriptions are what the user reads.
 */
export const GGUF_TYPE_RULES = {
  'not-quantized': '1-D tensors and norms are never quantized (F32)',
  'leave-output': 'output.weight keeps its source type (--leave-output-tensor)',
  'output-tensor-type': 'output.weight gets the type asked for (--output-tensor-type)',
  'token-embedding-type': 'token_embd.weight gets the type asked for (--token-embedding-type)',
  'tensor-type': 'a --tensor-type pattern matched this tensor',
  pure: 'every weight gets the base type (a pure type, or --pure)',
  'base-type': "no rule of the mix upgrades this tensor: the mix's base type",
  'output-q6_k': 'output.weight gets Q6_K: it feeds every logit',
  'output-q8_0': "output.weight gets Q8_0: its rows are not a whole number of the base type's blocks",
  'attn_v-q2_k': 'Q2_K mix: attn_v gets Q3_K',
  'attn_v-gqa': 'Q2_K mix: attn_v gets Q4_K when 4 or more query heads share each K/V head',
  'attn_v-first-2': 'Q3_K_M: attn_v of the first 2 layers gets Q5_K',
  'attn_v-q3_k_m': 'Q3_K_M: attn_v of the later layers gets Q4_K',
  'attn_v-q3_k_l': 'Q3_K_L: attn_v gets Q5_K',
  'attn_v-more-bits':
    'Q4_K_M/Q5_K_M: attn_v gets Q6_K in the layers use_more_bits picks (first and last eighth, every third between)',
  'attn_v-first-4': 'Q4_K_S: attn_v of the first 4 layers gets Q5_K',
  'attn_v-70b': 'a 70B Llama (80 layers, grouped K/V): attn_v at Q3_K/Q4_K is raised to Q5_K',
  'attn_v-8-experts': 'an 8-expert model: attn_v gets Q8_0',
  'attn_k-8-experts': 'an 8-expert model: attn_k gets Q8_0',
  'ffn_down-q2_k': 'Q2_K mix: ffn_down gets Q3_K',
  'ffn_down-first-sixteenth': 'Q3_K_M: ffn_down of the first sixteenth of the layers gets Q5_K',
  'ffn_down-q3_k_m': 'Q3_K_M: ffn_down of the other layers gets Q4_K',
  'ffn_down-q3_k_l': 'Q3_K_L: ffn_down gets Q5_K',
  'ffn_down-more-bits': 'Q4_K_M/Q5_K_M: ffn_down gets Q6_K in the layers use_more_bits picks',
  'ffn_down-first-eighth': 'Q4_K_S: ffn_down of the first eighth of the layers gets Q5_K',
  'attn_output-q2_k': 'Q2_K mix: attn_output gets Q3_K',
  'attn_output-q3_k_m': 'Q3_K_M: attn_output gets Q4_K',
  'attn_output-q3_k_l': 'Q3_K_L: attn_output gets Q5_K',
  'attn_output-8-experts': 'an 8-expert model: attn_output gets Q5_K in the low-bit mixes',
} as const
export type GgufTypeRule = keyof typeof GGUF_TYPE_RULES

/** One tensor's planned type, as the dry run and the mix table show it. */
export interface GgufTensorPlan {
  /** The GGUF tensor name (blk.0.attn_v.weight). */
  name: string
  /** The type it is stored as (after any fallback). */
  type: GgufTensorTypeName
  rule: GgufTypeRule
  /** The --tensor-type pattern, when that rule fired. */
  pattern?: string
  /** The type the rule asked for when its blocks do not fit the row, and why it was replaced. */
  fallback?: { from: GgufTensorTypeName; reason: string }
  elements: number
  bytes: number
  bitsPerWeight: number
}

/** What a GGUF export would write, tensor by tensor (the dry run, the Export dialog's mix table). */
export interface GgufExportPlan {
  type: GgufExportType
  tensors: GgufTensorPlan[]
  /** Source tensors with no place in a GGUF Llama, left out. */
  skipped: string[]
  /** Tensor data bytes in all. */
  bytes: number
}

/** A type name as llama-quantize users write it (q8_0 or Q8_0), or null when it names no tensor type. */
export function tensorTypeNamed(name: string): GgufTensorTypeName | null {
  const t = name.trim().toUpperCase()
  return (GGUF_TENSOR_TYPES as readonly string[]).includes(t) ? (t as GgufTensorTypeName) : null
}

/**
 * `PATTERN=TYPE` items (llama-quantize's --tensor-type), separated by commas or new lines, as the CLI and the
 * Export dialog take them; the problem with the first bad item instead when there is one.
 */
export function parseTensorTypeOverrides(text: string): { overrides: GgufTensorTypeOverride[] } | { problem: string } {
  const overrides: GgufTensorTypeOverride[] = []
  for (const raw of text.split(/[,\n]/)) {
    const item = raw.trim()
    if (item === '') continue
    const at = item.lastIndexOf('=')
    if (at <= 0 || at === item.length - 1) return { problem: `"${item}" is not PATTERN=TYPE` }
    const pattern = item.slice(0, at)
    try {
      new RegExp(pattern)
    } catch {
      return { problem: `"${pattern}" is not a valid regular expression` }
    }
    const type = tensorTypeNamed(item.slice(at + 1))
    if (!type) return { problem: `"${item.slice(at + 1)}" is not a GGUF type (one of ${GGUF_TENSOR_TYPES.join(', ')})` }
    overrides.push({ pattern, type })
  }
  return { overrides }
}
