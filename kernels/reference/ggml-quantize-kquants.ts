// Reference twin of kernels/assembly/ggml-quantize-kquants.ts: f32 -> the low-bit K-quants Q2_K and Q3_K,
// byte-exact with llama.cpp's quantize_row_q2_K_ref / quantize_row_q3_K_ref (what llama-quantize runs for
// them without an importance matrix). Rounding rules as in ./ggml-quantize; layouts in ./ggml-dequant-kquants.

import { makeQkx2Quants, nearestInt, putF16 } from './ggml-quantize'
import { KQUANT_BLOCKS, q3kScale, type KQuantType } from './ggml-dequant-kquants'

const f32 = Math.fround

const QK_K = 256
const GROUP_MAX_EPS = f32(1e-15)
const ONE_TENTH = f32(0.1)

function checkSizes(type: KQuantType, src: Float32Array, nblocks: number, dst: Uint8Array): void {
  const { elements, bytes } = KQUANT_BLOCKS[type]
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

/** Q2_K and Q3_K store four 2-bit levels per byte: L[128h + l + 32k] at bits 2k of qs[32h + l]. */
function pack2Bit(L: Uint8Array, dst: Uint8Array, qs: number): void {
  for (let half = 0; half < 2; half++) {
    for (let l = 0; l < 32; l++) {
      const e = 128 * half + l
      dst[qs + 32 * half + l] = (L[e] | (L[e + 32] << 2) | (L[e + 64] << 4) | (L[e + 96] << 6)) & 0xff
    }
  }
}

/**
 * Q2_K (84-byte blocks: scales[16], qs[64], f16 d, f16 dmin). Per 16-element sub-block an asymmetric
 * 2-bit fit (make_qkx2_quants, weights |x|, mean absolute error); the sixteen scales and mins become 4-bit
 * values against d = max scale / 15 and dmin = max min / 15 (scale in the low nibble, min in the high);
 * then x is requantized with the stored values, x ≈ d·sc·q − dmin·m.
 */
export function quantizeQ2_K(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q2_K', src, nblocks, dst)
  const L = new Uint8Array(QK_K)
  const Laux = new Uint8Array(16)
  const weights = new Float32Array(16)
  const scales = new Float32Array(16)
  const mins = new Float32Array(16)
  for (let b = 0; b < nblocks; b++) {
    const x = b * QK_K
    const at = b * 84
    let maxScale = 0
    let maxMin = 0
    for (let j = 0; j < 16; j++) {
      const sub = x + 16 * j
      for (let l = 0; l < 16; l++) weights[l] = Math.abs(src[sub + l])
      const [scale, min] = makeQkx2Quants(
        16,
        3,
        src.subarray(sub, sub + 16),
        weights,
        L.subarray(16 * j, 16 * j + 16),
        Laux,
        -0.5,
        ONE_TENTH,
        15,
        true,
      )
      scales[j] = scale
      mins[j] = min
      if (scale > maxScale) maxScale = scale
      if (min > maxMin) maxMin = min
    }
    let dAll = 0
    let dminAll = 0
    if (maxScale > 0) {
      const iscale = f32(15 / maxScale)
      for (let j = 0; j < 16; j++) dst[at + j] = nearestInt(f32(iscale * scales[j])) & 0xff
      dAll = putF16(dst, at + 80, f32(maxScale / 15))
    } else {
      dst.fill(0, at, at + 16)
      dAll = putF16(dst, at + 80, 0)
    }
    if (maxMin > 0) {
      const iscale = f32(15 / maxMin)
      for (let j = 0; j < 16; j++) dst[at + j] = (dst[at + j] | (nearestInt(f32(iscale * mins[j])) << 4)) & 0xff
      dminAll = putF16(dst, at + 82, f32(maxMin / 15))
    } else {
      dminAll = putF16(dst, at + 82, 0)
    }
    for (let j = 0; j < 16; j++) {
      const d = f32(dAll * (dst[at + j] & 0xf))
      if (d === 0) continue // the fit's levels stay (C: `if (!d) continue`, false for NaN)
      const dm = f32(dminAll * (dst[at + j] >> 4))
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(f32(f32(src[x + 16 * j + ii] + dm) / d))
        L[16 * j + ii] = Math.max(0, Math.min(3, l))
      }
    }
    pack2Bit(L, dst, at + 16)
  }
}

/**
 * make_q3_quants(n, nmax, x, L, do_rmse = true): a symmetric fit on levels -nmax .. nmax-1 started from
 * nmax / max and improved by up to 5 rounds of per-element coordinate descent on the x²-weighted error.
 * Writes levels + nmax to L (0 for an all-zero group, as C does); returns the scale.
 */
export function makeQ3Quants(n: number, nmax: number, x: Float32Array, L: Uint8Array): number {
  let max = 0
  let amax = 0
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i])
    if (ax > amax) {
      amax = ax
      max = x[i]
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n)
    return 0
  }
  const iscale = f32(-nmax / max)
  const levels = new Int8Array(n)
  let sumlx = 0
  let suml2 = 0
  for (let i = 0; i < n; i++) {
    const v = x[i]
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * v))))
    levels[i] = l
    const w = f32(v * v)
    sumlx = f32(sumlx + f32(f32(w * v) * l))
    suml2 = f32(suml2 + f32(f32(w * l) * l))
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0
    for (let i = 0; i < n; i++) {
      const v = x[i]
      const w = f32(v * v)
      const li = levels[i]
      let slx = f32(sumlx - f32(f32(w * v) * li))
      if (slx > 0) {
        let sl2 = f32(suml2 - f32(f32(w * li) * li))
        const newL = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(f32(v * sl2) / slx))))
        if (newL !== li) {
          slx = f32(slx + f32(f32(w * v) * newL))
          sl2 = f32(sl2 + f32(f32(w * newL) * newL))
          if (sl2 > 0 && f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            levels[i] = newL
            sumlx = slx
            suml2 = sl2
            changed++
          }
        }
      }
    }
    if (changed === 0) break
  }
  for (let i = 0; i < n; i++) L[i] = levels[i] + nmax
  return suml2 > 0 ? f32(sumlx / suml2) : 0
}

/**
 * Q3_K (110-byte blocks: hmask[32], qs[64], scales[12], f16 d). Per 16-element sub-block a symmetric 3-bit
 * fit (make_q3_quants); the sixteen scales become 6-bit values (offset 32) against d = -(scale of largest
 * magnitude) / 32; then x is requantized. Level bit 2 of element e goes to bit e / 32 of hmask[e % 32].
 */
export function quantizeQ3_K(src: Float32Array, nblocks: number, dst: Uint8Array): void {
  checkSizes('Q3_K', src, nblocks, dst)
  const L = new Uint8Array(QK_K)
  const scales = new Float32Array(16)
  for (let b = 0; b < nblocks; b++) {
    const x = b * QK_K
    const at = b * 110
    const packed = at + 96
    let maxScale = 0
    let amax = 0
    for (let j = 0; j < 16; j++) {
      const scale = makeQ3Quants(16, 4, src.subarray(x + 16 * j, x + 16 * j + 16), L.subarray(16 * j, 16 * j + 16))
      scales[j] = scale
      if (Math.abs(scale) > amax) {
        amax = Math.abs(scale)
        maxScale = scale
      }
    }
    dst.fill(0, packed, packed + 12)
    let dAll: number
    if (maxScale !== 0) {
      // C: `if (max_scale)`, true for NaN
      const iscale = f32(-32 / maxScale)
      for (let j = 0; j < 16; j++) {
        const l = Math.max(-32, Math.min(31, (nearestInt(f32(iscale * scales[j])) << 24) >> 24)) + 32 // int8_t l
        if (j < 8) dst[packed + j] = l & 0xf
        else dst[packed + j - 8] |= (l & 0xf) << 4
        dst[packed + 8 + (j & 3)] |= (l >> 4) << (2 * (j >> 2))
      }
      dAll = putF16(dst, at + 108, f32(1 / iscale))
    } else {
      dAll = putF16(dst, at + 108, 0)
    }
    for (let j = 0; j < 16; j++) {
      const d = f32(dAll * (q3kScale(dst, packed, j) - 32))
      if (d === 0) continue
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(f32(src[x + 16 * j + ii] / d))
        L[16 * j + ii] = Math.max(-4, Math.min(3, l)) + 4
      }
    }
    dst.fill(0, at, at + 32)
    for (let e = 0; e < QK_K; e++) {
      if (L[e] > 3) {
        dst[at + (e & 31)] |= 1 << (e >> 5)
        L[e] -= 4
      }
    }
    pack2Bit(L, dst, at + 32)
  }
}
