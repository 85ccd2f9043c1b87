// Every GGUF block type the reference twins decode, behind one entry point: the original five
// (./ggml-dequant) and the families added beside them (legacy, K-quants, IQ4, ternary).

import { DEQUANT_BLOCKS, dequantizeRow, type DequantType } from './ggml-dequant'
import { dequantizeQ4_1, dequantizeQ5_0, dequantizeQ5_1, LEGACY_BLOCKS, type LegacyType } from './ggml-dequant-legacy'
import { dequantizeQ2_K, dequantizeQ3_K, KQUANT_BLOCKS, type KQuantType } from './ggml-dequant-kquants'
import { dequantizeIQ4_NL, dequantizeIQ4_XS, IQ_BLOCKS, type IqType } from './ggml-dequant-iq'
import { dequantizeTQ1_0, dequantizeTQ2_0, TERNARY_BLOCKS, type TernaryType } from './ggml-dequant-ternary'

export type BlockType = DequantType | LegacyType | KQuantType | IqType | TernaryType

/** Elements and bytes per block of every block type here. */
export const BLOCK_GEOMETRY: Readonly<Record<BlockType, { elements: number; bytes: number }>> = {
  ...DEQUANT_BLOCKS,
  ...LEGACY_BLOCKS,
  ...KQUANT_BLOCKS,
  ...IQ_BLOCKS,
  ...TERNARY_BLOCKS,
}

export const BLOCK_TYPES = Object.keys(BLOCK_GEOMETRY) as BlockType[]

type Decoder = (src: Uint8Array, nblocks: number, dst: Float32Array) => void

const ADDED: Readonly<Record<Exclude<BlockType, DequantType>, Decoder>> = {
  Q4_1: dequantizeQ4_1,
  Q5_0: dequantizeQ5_0,
  Q5_1: dequantizeQ5_1,
  Q2_K: dequantizeQ2_K,
  Q3_K: dequantizeQ3_K,
  IQ4_NL: dequantizeIQ4_NL,
  IQ4_XS: dequantizeIQ4_XS,
  TQ1_0: dequantizeTQ1_0,
  TQ2_0: dequantizeTQ2_0,
}

export function isBlockType(s: string): s is BlockType {
  return Object.hasOwn(BLOCK_GEOMETRY, s)
}

/** Dequantizes `n` elements (a whole number of blocks) of `type` from `src` into `dst[0..n)`. */
export function dequantizeBlocks(type: BlockType, src: Uint8Array, n: number, dst: Float32Array): void {
  if (!isBlockType(type)) throw new RangeError(`dequantize: unsupported block type ${String(type)}`)
  if (Object.hasOwn(DEQUANT_BLOCKS, type)) {
    dequantizeRow(type as DequantType, src, n, dst)
    return
  }
  const block = BLOCK_GEOMETRY[type]
  if (!Number.isSafeInteger(n) || n < 0 || n % block.elements !== 0) {
    throw new RangeError(`dequantize ${type}: ${n} elements is not a whole number of ${block.elements}-element blocks`)
  }
  ADDED[type as Exclude<BlockType, DequantType>](src, n / block.elements, dst)
}
