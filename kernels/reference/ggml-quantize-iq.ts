// Reference twin of kernels/assembly/ggml-quantize-iq.ts: f32 -> the non-linear 4-bit types IQ4_NL and
// IQ4_XS, byte-exact with llama.cpp (ggml 0.10.1) quantize_iq4_nl / quantize_iq4_xs without an importance
// matrix, which is what llama-quantize runs (both go through quantize_row_iq4_nl_impl with ntry = 7; note
// that quantize_row_iq4_nl_ref, with ntry = -1, is *not* what llama-quantize uses). Rounding rules as in
// ./ggml-quantize; layouts and the 16-value grid in ./ggml-dequant-iq.

import { nearestInt, putF16 } from './ggml-quantize'
import { IQ_BLOCKS, IQ4_VALUES, type IqType } from './ggml-dequant-iq'

const f32 = Math.fround

const GROUP_MAX_EPS = f32(1e-15)
const NTRY = 7

function checkSizes(type: IqType, src: Float32Array, nblocks: number, dst: Uint8Array): void {
  const { elements, bytes } = IQ_BLOCKS[type]
  if (!Number.isSafeInteger(nblocks) || nblocks < 0)
    throw new RangeError(`quantize ${type}: bad block count ${nblocks}`)
  if (src.length < nblocks * elements) {
    throw new RangeError(
      `quantize ${type}: ${nblocks} blocks need ${nblocks * elements} inputs, the source has ${src.length}`,
    )
  }
  if (dst.length < nblocks * bytes) {
    throw new RangeError(
      `quantize ${type}: ${nblocks} blocks need ${nblocks * bytes} bytes, the destination has ${dst.length}`,
    )
  }
}

/**
 * best_index_int8 over the sorted grid: the index of the grid value nearest x, the upper one on a tie,
 * where "nearest" compares the f32 differences x - v[i-1] and v[i] - x as C does. NaN gives 15.
 */
export function bestIndex(x: number): number {
  if (x <= IQ4_VALUES[0]) return 0
  if (x >= IQ4_VALUES[15]) return 15
  let lo = 0
  let hi = 15
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (x < IQ4_VALUES[mid]) hi = mid
    else lo = mid
  }
  return f32(x - IQ4_VALUES[hi - 1]) < f32(IQ4_VALUES[hi] - x) ? hi - 1 : hi
}

/** The midpoints (grid[i] + grid[i + 1]) / 2 between neighbouring grid values, all exact in f32. */
export const IQ4_MIDPOINTS: readonly number[] = Array.from(
  { length: 15 },
  (_, i) => (IQ4_VALUES[i] + IQ4_VALUES[i + 1]) / 2,
)

/**
 * bestIndex as the WASM kernel computes it, branch-free in SIMD lanes: 15 − #{i : x < midpoint i}. Equal
 * to bestIndex for every f32 x (NaN, ±0 and infinities included): near a midpoint both differences
 * x − grid[i] and grid[i + 1] − x are exact in f32, so the rounded comparison is the exact one, and away
 * from it rounding cannot reverse it. Checked exhaustively over all 2^32 bit patterns in C; held to
 * bestIndex near every midpoint by kernels/test/ggml-iq4-lanes.test.ts.
 */
export function gridIndexByMidpoints(x: number): number {
  let index = 15
  for (const mid of IQ4_MIDPOINTS) if (x < mid) index--
  return index
}

/**
 * One 32-element sub-block's scale: the weighted least-squares scale of the best of the grids
 * d = max / 127 and (itry - 127) / max for itry = -7 .. 7. 0 for an all-zero group. The weights are x²,
 * or with an importance matrix qw · sqrt(σ² + x²) (see weightsFor).
 */
function fitSubBlock(src: Float32Array, x: number, weights: Float32Array | null): number {
  let amax = 0
  let max = 0
  for (let j = 0; j < 32; j++) {
    const ax = Math.abs(src[x + j])
    if (ax > amax) {
      amax = ax
      max = src[x + j]
    }
  }
  if (amax < GROUP_MAX_EPS) return 0
  let id = f32(1 / f32(-max / IQ4_VALUES[0]))
  let sumqx = 0
  let sumq2 = 0
  for (let j = 0; j < 32; j++) {
    const v = src[x + j]
    const q = IQ4_VALUES[bestIndex(f32(id * v))]
    const w = weights ? weights[j] : f32(v * v)
    sumqx = f32(sumqx + f32(f32(w * q) * v))
    sumq2 = f32(sumq2 + f32(f32(w * q) * q))
  }
  let d = sumq2 > 0 ? f32(sumqx / sumq2) : 0
  let best = f32(d * sumqx)
  for (let itry = -NTRY; itry <= NTRY; itry++) {
    id = f32((itry + IQ4_VALUES[0]) / max)
    sumqx = 0
    sumq2 = 0
    for (let j = 0; j < 32; j++) {
      const v = src[x + j]
      const q = IQ4_VALUES[bestIndex(f32(id * v))]
      const w = weights ? weights[j] : f32(v * v)
      sumqx = f32(sumqx + f32(f32(w * q) * v))
      sumq2 = f32(sumq2 + f32(f32(w * q) * q))
    }
    if (sumq2 > 0 && f32(sumqx * sumqx) > f32(best * sumq2)) {
      d = f32(sumqx / sumq2)
      best = f32(d * sumqx)
    }
  }
  return d
}

/** Element j of a 32-element group in the low nibble of byte j, element j + 16 in the high one. */
function packNibbles(src: Float32Array, x: number, scaleInverse: number, dst: Uint8Array, qs: number): void {
  for (let j = 0; j < 16; j++) {
    dst[qs + j] = bestIndex(f32(scaleInverse * src[x + j])) | (bestIndex(f32(scaleInverse * src[x + 16 + j])) << 4)
  }
}

/**
 * With an importance matrix (qw aligned with src), the weights of sub-block ib of the `size`-element
 * super-block at x: qw · sqrt(σ² + x²), σ² = 2 · mean square of the super-block. Null without one.
 */
function weightsFor(
  src: Float32Array,
  qw: Float32Array | undefined,
  x: number,
  size: number,
  ib: number,
  out: Float32Array,
): Float32Array | null {
  if (!qw) return null
  let sigma2 = 0
  for (let j = 0; j < size; j++) sigma2 = f32(sigma2 + f32(src[x + j] * src[x + j]))
  sigma2 = f32(sigma2 * f32(2 / size))
  for (let j = 0; j < 32; j++) {
    const v = src[x + 32 * ib + j]
    out[j] = f32(qw[x + 32 * ib + j] * f32(Math.sqrt(f32(sigma2 + f32(v * v)))))
  }
  return out
}

/**
 * IQ4_NL (18-byte blocks: f16 d, qs[16]): one fitted scale per 32, levels from the grid nearest x / d.
 * `importance`, when given, holds llama-quantize's quant_weights for each element of src.
 */
export function quantizeIQ4_NL(src: Float32Array, nblocks: number, dst: Uint8Array, importance?: Float32Array): void {
  checkSizes('IQ4_NL', src, nblocks, dst)
  const w = new Float32Array(32)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 32
    const at = b * 18
    const scale = fitSubBlock(src, x, weightsFor(src, importance, x, 32, 0, w))
    putF16(dst, at, scale)
    // C computes the levels with 1 / scale in f32, not the stored fp16 scale.
    packNibbles(src, x, scale !== 0 ? f32(1 / scale) : 0, dst, at + 2)
  }
}

/**
 * IQ4_XS (136-byte blocks: f16 d, u16 scales_h, scales_l[4], qs[128]): eight sub-block scales fitted as in
 * IQ4_NL, stored as 6-bit values (offset 32) against d = -(scale of largest magnitude) / 32, low nibbles
 * in scales_l, top 2 bits at bits 2j of scales_h; levels from the grid nearest x / (d · l).
 */
export function quantizeIQ4_XS(src: Float32Array, nblocks: number, dst: Uint8Array, importance?: Float32Array): void {
  checkSizes('IQ4_XS', src, nblocks, dst)
  const scales = new Float32Array(8)
  const w = new Float32Array(32)
  for (let b = 0; b < nblocks; b++) {
    const x = b * 256
    const at = b * 136
    let maxScale = 0
    let amaxScale = 0
    for (let ib = 0; ib < 8; ib++) {
      const d = fitSubBlock(src, x + 32 * ib, weightsFor(src, importance, x, 256, ib, w))
      scales[ib] = d
      if (Math.abs(d) > amaxScale) {
        amaxScale = Math.abs(d)
        maxScale = d
      }
    }
    const d = f32(-maxScale / 32)
    putF16(dst, at, d)
    const id = d !== 0 ? f32(1 / d) : 0
    let scalesH = 0
    dst.fill(0, at + 4, at + 8)
    for (let ib = 0; ib < 8; ib++) {
      const l = Math.max(-32, Math.min(31, nearestInt(f32(id * scales[ib]))))
      const dl = f32(d * l)
      packNibbles(src, x + 32 * ib, dl !== 0 ? f32(1 / dl) : 0, dst, at + 8 + 16 * ib)
      const stored = l + 32
      dst[at + 4 + (ib >> 1)] |= (stored & 0xf) << (4 * (ib & 1))
      scalesH |= (stored >> 4) << (2 * ib)
    }
    dst[at + 2] = scalesH & 0xff
    dst[at + 3] = scalesH >>> 8
  }
}
