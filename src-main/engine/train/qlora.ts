// QLoRA's frozen base (Dettmers et al. 2023): the block Linears held as NF4 codes (two per byte) plus
// their block constants, double-quantized as QLoRA stores them (an 8-bit code per block, an f32 per run
// of 256 blocks, one f32 mean), and dequantized one decoder block at a time into one f32 kernel buffer
// per Linear role, right before the block runs forward or backward (frozen-linears.ts).
//
// The packed form is recovered from the f32 weights an earlier nf4 step left in the model: in a block
// of NF4 values the largest magnitude is the block constant itself (its value codes ±1), and every
// other value is that constant times one of the 16 levels. pack() checks this exactly and refuses a
// weight that is not NF4 with that block size.
//
// Bytes per weight: 1/2 (codes) + 1/blockSize (8-bit constants) + 4/(256·blockSize) + a few bytes per
// tensor, against 4 for the f32 base and 2 for an F16/BF16 one; one block's f32 Linears come on top.

import { WhittleError } from '../errors'
import type { WorkerPool } from '../pool/worker-pool'
import type { LlamaLinear } from './llama-weights'
import { BlockwiseLinears } from './frozen-linears'

/** Double-quantized block constants: an 8-bit code per block, an f32 absmax per run of 256, the mean. */
export interface EncodedAbsmax {
  codes: Uint8Array
  runMax: Float32Array
  mean: number
}

/**
 * The NF4 data type, declared once by the nf4 method (compress/methods/nf4.ts) and handed in by the
 * caller: the training engine sits below the compression methods and must not import them.
 */
export interface Nf4Codec {
  levels: readonly number[]
  /** Index of the level nearest to x in [−1, 1]. */
  nearest(x: number): number
  encodeAbsmax(absmax: Float32Array): EncodedAbsmax
  decodeAbsmax(e: EncodedAbsmax): Float32Array
  /** Quantizes W to NF4 in place (block constants in f32), as the nf4 method does. */
  quantize(W: Float32Array, blockSize: number): void
}

/** Block sizes tried, in this order, when looking for the NF4 block size of a weight. */
export const NF4_BLOCK_CANDIDATES = [64, 32, 128, 256, 16, 512, 1024, 2048, 4096] as const

/**
 * NF4 codes and block constants of W when W is exactly NF4 with `blockSize`; null otherwise. The
 * constants are the exact f32 values W was dequantized with.
 */
export function recoverNf4(
  codec: Nf4Codec,
  W: Float32Array,
  blockSize: number,
): { codes: Uint8Array; absmax: Float32Array } | null {
  const blocks = Math.ceil(W.length / blockSize)
  const absmax = new Float32Array(blocks)
  const codes = new Uint8Array(W.length)
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(W.length, (b + 1) * blockSize)
    let m = 0
    for (let i = b * blockSize; i < end; i++) m = Math.max(m, Math.abs(W[i]))
    absmax[b] = m
    for (let i = b * blockSize; i < end; i++) {
      const c = m > 0 ? codec.nearest(W[i] / m) : 7
      if (Math.fround(m * codec.levels[c]) !== W[i]) return null
      codes[i] = c
    }
  }
  return { codes, absmax }
}

/** The block size (of the candidates) with which W is exactly NF4, or null. */
export function detectNf4BlockSize(codec: Nf4Codec, W: Float32Array): number | null {
  for (const b of NF4_BLOCK_CANDIDATES) if (W.length % b === 0 && recoverNf4(codec, W, b)) return b
  return null
}

interface PackedTensor {
  rows: number
  cols: number
  /** Two 4-bit codes per byte, the first in the low nibble. */
  codes: Uint8Array
  /** Block constants: double-quantized (8-bit codes, run absmax, mean), or f32. */
  constants: EncodedAbsmax | Float32Array
}

export class Nf4PackedLinears extends BlockwiseLinears {
  private readonly tensors = new Map<string, PackedTensor>()
  private readonly constantSums = { squared: 0, norm: 0 }
  private readonly levels: Float32Array

  /**
   * With `quantizeDense`, a weight that is not NF4 yet is quantized on the way in (QLoRA loading a dense
   * model in 4 bits); without, such a weight is refused.
   */
  constructor(
    pool: WorkerPool,
    private readonly codec: Nf4Codec,
    readonly blockSize: number,
    readonly doubleQuant: boolean,
    private readonly file: string | null = null,
    private readonly quantizeDense = false,
  ) {
    super(pool)
    this.levels = Float32Array.from(codec.levels)
  }

  protected store(layer: number, role: LlamaLinear, W: Float32Array, rows: number, cols: number): void {
    let found = recoverNf4(this.codec, W, this.blockSize)
    if (!found && this.quantizeDense) {
      const q = W.slice()
      this.codec.quantize(q, this.blockSize)
      found = recoverNf4(this.codec, q, this.blockSize)
    }
    if (!found) {
      throw new WhittleError(
        'validation',
        this.file,
        `QLoRA: layer ${layer} ${role} is not NF4 with block size ${this.blockSize}; quantize the base with an nf4 step first (or train plain LoRA)`,
      )
    }
    const n = W.length
    const codes = new Uint8Array(Math.ceil(n / 2))
    for (let i = 0; i < n; i++) codes[i >> 1] |= found.codes[i] << ((i & 1) * 4)
    let constants: PackedTensor['constants'] = found.absmax
    if (this.doubleQuant) {
      constants = this.codec.encodeAbsmax(found.absmax)
      const decoded = this.codec.decodeAbsmax(constants)
      for (let b = 0; b < decoded.length; b++) {
        this.constantSums.squared += (decoded[b] - found.absmax[b]) ** 2
        this.constantSums.norm += found.absmax[b] ** 2
      }
      this.packedBytes += constants.codes.byteLength + constants.runMax.byteLength + 4
    } else {
      this.packedBytes += found.absmax.byteLength
    }
    this.packedBytes += codes.byteLength
    this.tensors.set(`${layer}:${role}`, { rows, cols, codes, constants })
  }

  /**
   * ‖c′ − c‖ / ‖c‖ over every block constant c that double quantization turned into c′ (0 without it):
   * how far holding the base packed moved it from the weights it was given.
   */
  get constantChange(): number {
    return this.constantSums.norm > 0 ? Math.sqrt(this.constantSums.squared / this.constantSums.norm) : 0
  }

  protected load(layer: number, role: LlamaLinear, out: Float32Array): boolean {
    const t = this.tensors.get(`${layer}:${role}`)
    if (!t) return false
    const absmax = t.constants instanceof Float32Array ? t.constants : this.codec.decodeAbsmax(t.constants)
    const n = t.rows * t.cols,
      B = this.blockSize,
      codes = t.codes,
      levels = this.levels
    for (let b = 0, i0 = 0; i0 < n; b++, i0 += B) {
      const m = absmax[b],
        end = Math.min(n, i0 + B)
      for (let i = i0; i < end; i++) out[i] = m * levels[(codes[i >> 1] >> ((i & 1) << 2)) & 15]
    }
    return true
  }

  override free(): void {
    this.tensors.clear()
    super.free()
  }
}
