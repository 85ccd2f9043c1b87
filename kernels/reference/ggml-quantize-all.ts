// Every GGUF block type the reference twins quantize to, behind one entry point: the original five
// (./ggml-quantize) and the families added beside them (legacy, K-quants, IQ4, ternary), all byte-exact
// with llama-quantize without an importance matrix.

import { quantizeRow, type QuantType } from './ggml-quantize'
import { quantizeQ4_1, quantizeQ5_0, quantizeQ5_1 } from './ggml-quantize-legacy'
import { quantizeQ2_K, quantizeQ3_K } from './ggml-quantize-kquants'
import { quantizeIQ4_NL, quantizeIQ4_XS } from './ggml-quantize-iq'
import { quantizeTQ1_0, quantizeTQ2_0 } from './ggml-quantize-ternary'
import { BLOCK_GEOMETRY, isBlockType, type BlockType } from './ggml-dequant-all'

type Quantizer = (src: Float32Array, nblocks: number, dst: Uint8Array) => void

const ADDED: Readonly<Record<Exclude<BlockType, QuantType>, Quantizer>> = {
  Q4_1: quantizeQ4_1,
  Q5_0: quantizeQ5_0,
  Q5_1: quantizeQ5_1,
  Q2_K: quantizeQ2_K,
  Q3_K: quantizeQ3_K,
  IQ4_NL: quantizeIQ4_NL,
  IQ4_XS: quantizeIQ4_XS,
  TQ1_0: quantizeTQ1_0,
  TQ2_0: quantizeTQ2_0,
}

/** Quantizes `n` elements (a whole number of blocks) of `src` to `type`, into `dst` from byte 0. */
export function quantizeBlocks(type: BlockType, src: Float32Array, n: number, dst: Uint8Array): void {
  if (!isBlockType(type)) throw new RangeError(`quantize: unsupported block type ${String(type)}`)
  if (!Object.hasOwn(ADDED, type)) {
    quantizeRow(type as QuantType, src, n, dst)
    return
  }
  const block = BLOCK_GEOMETRY[type]
  if (!Number.isSafeInteger(n) || n < 0 || n % block.elements !== 0) {
    throw new RangeError(`quantize ${type}: ${n} elements is not a whole number of ${block.elements}-element blocks`)
  }
  ADDED[type as Exclude<BlockType, QuantType>](src, n / block.elements, dst)
}
