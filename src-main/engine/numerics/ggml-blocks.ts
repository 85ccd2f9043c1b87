// ggml tensor types as GGUF stores them: numeric id, name and block geometry, declared once. The reader
// (formats/ggml-types.ts adds which engine dtype decodes each), the quantizers and the export's
// free-space estimate all derive from this table; the kernels' own block tables (kernels/reference,
// which import nothing from the engine) are checked against it in ggml-blocks.test.ts.
//
// Ids and sizes follow ggml's `enum ggml_type` and the block structs in ggml-common.h (cross-checked
// with gguf-py's GGML_QUANT_SIZES). Ids 4, 5 and 31..33, 36..38 were retired upstream and must not be
// reused, which is why the table has gaps.

/** The super-block of the K-quants, IQ and TQ types. */
export const QK_K = 256

export interface GgmlBlockInfo {
  id: number
  name: string
  /** Elements per block (1 for plain scalar types). */
  blockElements: number
  /** Bytes per block. */
  blockBytes: number
}

function t(id: number, name: string, blockElements: number, blockBytes: number): GgmlBlockInfo {
  return { id, name, blockElements, blockBytes }
}

/** Every ggml type id Whittle knows, in id order. */
export const GGML_BLOCKS: readonly GgmlBlockInfo[] = [
  t(0, 'F32', 1, 4),
  t(1, 'F16', 1, 2),
  t(2, 'Q4_0', 32, 2 + 16),
  t(3, 'Q4_1', 32, 2 + 2 + 16),
  t(6, 'Q5_0', 32, 2 + 4 + 16),
  t(7, 'Q5_1', 32, 2 + 2 + 4 + 16),
  t(8, 'Q8_0', 32, 2 + 32),
  // d and s packed as two fp16 (ggml_half2), then 32 int8.
  t(9, 'Q8_1', 32, 2 + 2 + 32),
  t(10, 'Q2_K', QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
  t(11, 'Q3_K', QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
  t(12, 'Q4_K', QK_K, 2 + 2 + 12 + QK_K / 2),
  t(13, 'Q5_K', QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2),
  t(14, 'Q6_K', QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2),
  // f32 d, int8 qs[256], int16 bsums[16].
  t(15, 'Q8_K', QK_K, 4 + QK_K + QK_K / 8),
  t(16, 'IQ2_XXS', QK_K, 2 + QK_K / 4),
  t(17, 'IQ2_XS', QK_K, 2 + QK_K / 4 + QK_K / 32),
  t(18, 'IQ3_XXS', QK_K, 2 + QK_K / 4 + QK_K / 8),
  t(19, 'IQ1_S', QK_K, 2 + QK_K / 8 + QK_K / 16),
  t(20, 'IQ4_NL', 32, 2 + 16),
  t(21, 'IQ3_S', QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
  t(22, 'IQ2_S', QK_K, 2 + QK_K / 4 + QK_K / 16),
  t(23, 'IQ4_XS', QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
  t(24, 'I8', 1, 1),
  t(25, 'I16', 1, 2),
  t(26, 'I32', 1, 4),
  t(27, 'I64', 1, 8),
  t(28, 'F64', 1, 8),
  t(29, 'IQ1_M', QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
  t(30, 'BF16', 1, 2),
  t(34, 'TQ1_0', QK_K, 2 + 4 * 13),
  t(35, 'TQ2_0', QK_K, 2 + 64),
  // e8m0 shared exponent + 16 bytes of 4-bit values.
  t(39, 'MXFP4', 32, 1 + 16),
]

const BY_ID = new Map<number, GgmlBlockInfo>(GGML_BLOCKS.map((x) => [x.id, x]))
/** A Map: names come from files and requests, and a plain object would answer "constructor". */
const BY_NAME = new Map<string, GgmlBlockInfo>(GGML_BLOCKS.map((x) => [x.name, x]))

/** The type with this id, or undefined for an id ggml does not define (or retired). */
export function ggmlBlockById(id: number): GgmlBlockInfo | undefined {
  return BY_ID.get(id)
}

/** The type with this name ('Q4_K', 'F32', ...), or undefined. */
export function ggmlBlockByName(name: string): GgmlBlockInfo | undefined {
  return BY_NAME.get(name)
}

/** Storage bits per weight of a type: 8 · bytes per block / elements per block (Q5_K: 5.5). */
export function bitsPerWeight(info: Pick<GgmlBlockInfo, 'blockElements' | 'blockBytes'>): number {
  return (8 * info.blockBytes) / info.blockElements
}

/** Bytes of `elements` values of a type, which must be a whole number of its blocks. */
export function ggmlBytes(info: Pick<GgmlBlockInfo, 'blockElements' | 'blockBytes'>, elements: number): number {
  return (elements / info.blockElements) * info.blockBytes
}

/**
 * The main ggml type of a llama.cpp file type (llama-quantize's type names): the type itself when it is
 * one ('Q5_K', 'IQ2_XS'), else a mix's base type named by dropping its size suffix (Q4_K_M, Q4_K_S → Q4_K;
 * Q3_K_L → Q3_K; Q2_K_S → Q2_K). Undefined when neither names a ggml type.
 */
export function mainGgmlType(fileType: string): GgmlBlockInfo | undefined {
  const own = BY_NAME.get(fileType)
  if (own) return own
  const mix = /^(.+)_(S|M|L)$/.exec(fileType)
  return mix ? BY_NAME.get(mix[1]) : undefined
}
