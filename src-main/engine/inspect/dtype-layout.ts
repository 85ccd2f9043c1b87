// Block geometry per dtype, as the streaming code needs it. (Placeholder until wired to formats/.)
import type { DType } from '../formats/types'

const BLOCKS: Partial<Record<DType, [elements: number, bytes: number]>> = {
  F64: [1, 8], F32: [1, 4], F16: [1, 2], BF16: [1, 2], F8_E4M3: [1, 1], F8_E5M2: [1, 1],
  I64: [1, 8], I32: [1, 4], I16: [1, 2], I8: [1, 1], U64: [1, 8], U32: [1, 4], U16: [1, 2], U8: [1, 1], BOOL: [1, 1],
  Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24], Q8_0: [32, 34], Q8_1: [32, 36],
  Q2_K: [256, 84], Q3_K: [256, 110], Q4_K: [256, 144], Q5_K: [256, 176], Q6_K: [256, 210], Q8_K: [256, 292],
}

export function elementsPerBlock(dtype: DType): number {
  return BLOCKS[dtype]?.[0] ?? 1
}

export function bytesForElements(dtype: DType, elements: number): number {
  const b = BLOCKS[dtype]
  if (!b) throw new Error(`no layout for ${dtype}`)
  return (elements / b[0]) * b[1]
}
