// NF4 (QLoRA, Dettmers et al. 2023): blockwise absmax over the flattened weight, each value divided
// by its block's absmax and mapped to the nearest of 16 NormalFloat levels (quantiles of N(0, 1)
// spaced so that 0 is exact), then dequantized as absmax · level. With double quantization the
// per-block absmax constants are themselves quantized: their mean is subtracted and the rest is
// coded blockwise (256 per block) in bitsandbytes' 8-bit dynamic data type, as QLoRA stores them.
// No calibration.

import { WhittleError } from '../../errors'
import { boolParam, intParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

/**
 * The 16 NF4 code values, copied from bitsandbytes (csrc/kernels.cu, dDequantizeNF4; the same table
 * as functional.py's get_4bit_type('nf4')), which the QLoRA paper defines. They are f32 values.
 */
export const NF4_LEVELS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]

/** Blocks of the absmax constants in double quantization (QLoRA, section 3). */
export const DOUBLE_QUANT_BLOCK = 256

export interface Nf4Params {
  blockSize: number
  doubleQuant: boolean
}

const f = Math.fround

/**
 * Index of the level nearest to x (x in [−1, 1]); a value exactly halfway between two levels takes
 * the lower one, as bitsandbytes' decision tree (`x > midpoint` goes up) does.
 */
export function nearestNf4(x: number): number {
  let lo = 0
  // 15 midpoints, so a linear scan is as fast as a search and obviously right.
  while (lo < 15 && x > (NF4_LEVELS[lo] + NF4_LEVELS[lo + 1]) / 2) lo++
  return lo
}

/**
 * bitsandbytes' signed 8-bit dynamic data type (create_dynamic_map, 7 exponent bits): for decade
 * i = 0..6, the 2^i midpoints of linspace(0.1, 1, 2^i + 1) times 10^(i−6), both signs, plus 0 and 1;
 * 256 sorted f32 values in [−1, 1] that are dense near 0. Built here from that definition.
 */
export function dynamicMap8(): Float32Array {
  const values: number[] = [0, 1]
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i + 1
    const scale = 10 ** (i - 6)
    for (let j = 0; j + 1 < n; j++) {
      const a = f(0.1 + (0.9 * j) / (n - 1))
      const b = f(0.1 + (0.9 * (j + 1)) / (n - 1))
      const mean = f(f(a + b) / 2)
      values.push(f(scale * mean), f(-scale * mean))
    }
  }
  values.sort((x, y) => x - y)
  return Float32Array.from(values)
}

let dynamicCode: Float32Array | null = null

/** Index of the value of the sorted `code` nearest to x (ties to the lower one). */
function nearestCode(code: Float32Array, x: number): number {
  let lo = 0,
    hi = code.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (code[mid] <= x) lo = mid
    else hi = mid
  }
  return Math.abs(x - code[lo]) <= Math.abs(code[hi] - x) ? lo : hi
}

/**
 * Double quantization of the per-block constants: subtract their mean, code each run of 256 in the
 * dynamic 8-bit type relative to the run's absmax, and return the dequantized constants (code · absmax
 * + mean, in f32) that the NF4 dequantization will really use.
 */
export function doubleQuantizeAbsmax(absmax: Float32Array): Float32Array {
  return decodeAbsmax(encodeAbsmax(absmax))
}

/** Double-quantized block constants as stored: an 8-bit code per block, an f32 absmax per run of 256, the mean. */
export interface EncodedAbsmax {
  codes: Uint8Array
  runMax: Float32Array
  mean: number
}

export function encodeAbsmax(absmax: Float32Array): EncodedAbsmax {
  const code = (dynamicCode ??= dynamicMap8())
  let sum = 0
  for (const a of absmax) sum += a
  const mean = f(sum / absmax.length)
  const codes = new Uint8Array(absmax.length)
  const runMax = new Float32Array(Math.ceil(absmax.length / DOUBLE_QUANT_BLOCK))
  for (let b0 = 0; b0 < absmax.length; b0 += DOUBLE_QUANT_BLOCK) {
    const b1 = Math.min(absmax.length, b0 + DOUBLE_QUANT_BLOCK)
    let m = 0
    for (let i = b0; i < b1; i++) m = Math.max(m, Math.abs(f(absmax[i] - mean)))
    runMax[b0 / DOUBLE_QUANT_BLOCK] = m
    // A run whose constants all equal the mean codes 0 (the dynamic type's exact zero).
    for (let i = b0; i < b1; i++) codes[i] = m > 0 ? nearestCode(code, f(absmax[i] - mean) / m) : nearestCode(code, 0)
  }
  return { codes, runMax, mean }
}

/** The block constants the NF4 dequantization uses: code · run absmax + mean, in f32. */
export function decodeAbsmax(e: EncodedAbsmax): Float32Array {
  const code = (dynamicCode ??= dynamicMap8())
  const out = new Float32Array(e.codes.length)
  for (let i = 0; i < out.length; i++)
    out[i] = f(f(code[e.codes[i]] * e.runMax[Math.floor(i / DOUBLE_QUANT_BLOCK)]) + e.mean)
  return out
}

/**
 * Quantizes W (any shape, flattened) in place to NF4 with blocks of `blockSize` values (the last
 * one possibly shorter). Returns the per-block constants used for dequantization.
 */
export function nf4Quantize(W: Float32Array, p: Nf4Params): Float32Array {
  const blocks = Math.ceil(W.length / p.blockSize)
  let absmax: Float32Array = new Float32Array(blocks)
  for (let b = 0; b < blocks; b++) {
    let m = 0
    const end = Math.min(W.length, (b + 1) * p.blockSize)
    for (let i = b * p.blockSize; i < end; i++) m = Math.max(m, Math.abs(W[i]))
    absmax[b] = m
  }
  const codes = new Uint8Array(W.length)
  for (let b = 0; b < blocks; b++) {
    const m = absmax[b]
    const end = Math.min(W.length, (b + 1) * p.blockSize)
    // An all-zero block codes every value as the exact level 0.
    for (let i = b * p.blockSize; i < end; i++) codes[i] = m > 0 ? nearestNf4(W[i] / m) : 7
  }
  if (p.doubleQuant) absmax = doubleQuantizeAbsmax(absmax)
  for (let i = 0; i < W.length; i++) W[i] = f(absmax[Math.floor(i / p.blockSize)] * NF4_LEVELS[codes[i]])
  return absmax
}

export function nf4BitsPerWeight(p: Nf4Params): number {
  // 4-bit codes plus an f32 absmax per block, or, double-quantized, an 8-bit code per block and
  // an f32 absmax per 256 blocks (the one f32 mean per tensor is negligible).
  return p.doubleQuant ? 4 + 8 / p.blockSize + 32 / (p.blockSize * DOUBLE_QUANT_BLOCK) : 4 + 32 / p.blockSize
}

function nf4Format(p: Nf4Params): string {
  return `nf4 b${p.blockSize}${p.doubleQuant ? ' dq' : ''}`
}

export const NF4_PARAMS: readonly ParamSpec[] = [
  intParam('block_size', 64, 2, 1 << 20, 'Weights per absmax block'),
  boolParam('double_quant', false, 'Quantize the block absmax values too (8-bit, as QLoRA)'),
]

export const nf4: CompressionMethod<Nf4Params> = {
  name: 'nf4',
  kind: 'quantize',
  summary: 'NF4: 4-bit normal-float codes per absmax block, optional double quantization; no calibration',
  params: NF4_PARAMS,
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, NF4_PARAMS)
    const p: Nf4Params = { blockSize: r.int('block_size'), doubleQuant: r.bool('double_quant') }
    r.done()
    return p
  },
  predict: (p) => ({ bitsPerWeight: nf4BitsPerWeight(p), format: nf4Format(p) }),
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      // A NaN or infinity would poison its whole block's absmax without a word.
      if (!l.weight.every(Number.isFinite))
        throw new WhittleError('validation', null, `nf4: ${l.name} has non-finite weights`)
      nf4Quantize(l.weight, l.params)
      return { name: l.name, bitsPerWeight: nf4BitsPerWeight(l.params), format: nf4Format(l.params) }
    })
  },
}
