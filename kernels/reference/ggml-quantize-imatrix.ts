// Reference quantizers with an importance matrix: llama.cpp's quantize_row_*_impl with `quant_weights`
// (ggml 0.10.1), which llama-quantize --imatrix runs. The importance of input column c is
// imatrix Σx² / count for that column; each row of a [rows, cols] weight is quantized with those cols
// weights. Byte-exact rules as in ./ggml-quantize (one f32 rounding per operation, in C's order).
//
// What the weights change, per type:
// - Q4_0, Q5_0: one symmetric weighted fit per 32 (make_qx_quants), no requantization;
// - Q4_1, Q5_1: one asymmetric weighted fit per 32 (make_qkx3_quants), no requantization;
// - Q2_K, Q4_K, Q5_K: weighted asymmetric fits per sub-block, then the sub-block scales and mins are
//   themselves fitted (make_qp_quants) instead of scaled by the largest;
// - Q3_K: weighted symmetric fits, and the sixteen scales fitted the same way (make_qx_quants);
// - Q6_K: the imatrix replaces the x² weights of the reference fit;
// - IQ4_NL, IQ4_XS: weights qw · sqrt(σ² + x²) replace x².
// Q8_0, TQ1_0 and TQ2_0 ignore an importance matrix, as llama.cpp does.
// Here, a row's weights are w(c) = qw(c) · sqrt(σ² + x(c)²) where σ² is the row's (legacy types) or the
// 256-block's (K-quants) mean square, with a factor 2 for Q3_K, Q4_K, Q5_K and the IQ4 types.

import { makeQkx2Quants, nearestInt, putF16 } from './ggml-quantize'
import { quantizeIQ4_NL, quantizeIQ4_XS } from './ggml-quantize-iq'
import { BLOCK_GEOMETRY, type BlockType } from './ggml-dequant-all'
import { quantizeBlocks } from './ggml-quantize-all'
import { q3kScale } from './ggml-dequant-kquants'

const f32 = Math.fround
const GROUP_MAX_EPS = f32(1e-15)
const ONE_TENTH = f32(0.1)
const QK_K = 256

/** Types whose quantization an importance matrix changes. */
export const IMATRIX_TYPES: readonly BlockType[] = [
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q2_K',
  'Q3_K',
  'Q4_K',
  'Q5_K',
  'Q6_K',
  'IQ4_NL',
  'IQ4_XS',
]

function sumSquares(x: Float32Array, from: number, n: number): number {
  let s = 0
  for (let j = 0; j < n; j++) s = f32(s + f32(x[from + j] * x[from + j]))
  return s
}

/** w[j] = qw[j] · sqrt(σ² + x[j]²) for n elements from `from`. */
function importanceWeights(
  x: Float32Array,
  qw: Float32Array,
  from: number,
  n: number,
  sigma2: number,
  w: Float32Array,
): void {
  for (let j = 0; j < n; j++) w[j] = f32(qw[from + j] * f32(Math.sqrt(f32(sigma2 + f32(x[from + j] * x[from + j])))))
}

/**
 * make_qx_quants(n, nmax, x, L, rmse_type 1, weights w): the best of 19 symmetric grids by weighted least
 * squares; writes level + nmax to L; returns the scale.
 */
export function makeQxQuantsWeighted(n: number, nmax: number, x: Float32Array, L: Uint8Array, w: Float32Array): number {
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
  const level = (iscale: number, v: number) => Math.max(-nmax, Math.min(nmax - 1, nearestInt(f32(iscale * v))))
  let iscale = f32(-nmax / max)
  let sumlx = 0
  let suml2 = 0
  for (let i = 0; i < n; i++) {
    const l = level(iscale, x[i])
    L[i] = l + nmax
    sumlx = f32(sumlx + f32(f32(w[i] * x[i]) * l))
    suml2 = f32(suml2 + f32(f32(w[i] * l) * l))
  }
  let scale = suml2 !== 0 ? f32(sumlx / suml2) : 0
  let best = f32(scale * sumlx)
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue
    iscale = f32(-f32(nmax + f32(ONE_TENTH * is)) / max)
    sumlx = 0
    suml2 = 0
    for (let i = 0; i < n; i++) {
      const l = level(iscale, x[i])
      sumlx = f32(sumlx + f32(f32(w[i] * x[i]) * l))
      suml2 = f32(suml2 + f32(f32(w[i] * l) * l))
    }
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      for (let i = 0; i < n; i++) L[i] = nmax + level(iscale, x[i])
      scale = f32(sumlx / suml2)
      best = f32(scale * sumlx)
    }
  }
  return scale
}

/**
 * make_qp_quants(n, nmax, x, L, weights): a scale for non-negative x on levels 0..nmax, from 9 trial grids
 * and up to 5 rounds of coordinate descent. L is C's uint8_t array: levels wrap modulo 256 when stored.
 */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, w: Float32Array): number {
  let max = 0
  for (let i = 0; i < n; i++) max = max > x[i] ? max : x[i]
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n)
    return 0
  }
  let iscale = f32(nmax / max)
  for (let i = 0; i < n; i++) L[i] = nearestInt(f32(iscale * x[i])) & 0xff
  const scale = f32(1 / iscale)
  let bestMse = 0
  for (let i = 0; i < n; i++) {
    const diff = f32(x[i] - f32(scale * L[i]))
    bestMse = f32(bestMse + f32(f32(w[i] * diff) * diff))
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue
    const iscaleIs = f32(f32(f32(ONE_TENTH * is) + nmax) / max)
    const scaleIs = f32(1 / iscaleIs)
    let mse = 0
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f32(iscaleIs * x[i])))
      const diff = f32(x[i] - f32(scaleIs * l))
      mse = f32(mse + f32(f32(w[i] * diff) * diff))
    }
    if (mse < bestMse) {
      bestMse = mse
      iscale = iscaleIs
    }
  }
  let sumlx = 0
  let suml2 = 0
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f32(iscale * x[i])))
    L[i] = l & 0xff
    sumlx = f32(sumlx + f32(f32(w[i] * x[i]) * l))
    suml2 = f32(suml2 + f32(f32(w[i] * l) * l))
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0
    for (let i = 0; i < n; i++) {
      const li = L[i]
      let slx = f32(sumlx - f32(f32(w[i] * x[i]) * li))
      let sl2 = f32(suml2 - f32(f32(w[i] * li) * li))
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f32(f32(x[i] * sl2) / slx)))
        if (newL !== li) {
          slx = f32(slx + f32(f32(w[i] * x[i]) * newL))
          sl2 = f32(sl2 + f32(f32(w[i] * newL) * newL))
          if (f32(f32(slx * slx) * suml2) > f32(f32(sumlx * sumlx) * sl2)) {
            L[i] = newL & 0xff
            sumlx = slx
            suml2 = sl2
            changed++
          }
        }
      }
    }
    if (changed === 0) break
  }
  return suml2 > 0 ? f32(sumlx / suml2) : 0
}

/** make_qkx3_quants(n, nmax, x, w, L, …, rmin −0.9, rdelta 0.05, nstep 36, squared error): [scale, the_min]. */
function fitAsymmetric(n: number, nmax: number, x: Float32Array, w: Float32Array, L: Uint8Array): [number, number] {
  // With explicit weights, make_qkx3_quants differs from make_qkx2_quants only in testing max <= min
  // instead of max == min, which cannot differ once min is clamped to <= 0 (NaN fails both).
  return makeQkx2Quants(n, nmax, x, w, L, new Uint8Array(n), f32(-0.9), f32(0.05), 36, false)
}

/** The legacy 32-element types: one weighted fit per block with σ² = the row's mean square. */
function legacyRow(type: 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1', x: Float32Array, qw: Float32Array, dst: Uint8Array): void {
  const n = x.length
  const sigma2 = f32(sumSquares(x, 0, n) / n)
  const w = new Float32Array(32)
  const L = new Uint8Array(32)
  const bytes = BLOCK_GEOMETRY[type].bytes
  for (let ib = 0; ib < n / 32; ib++) {
    const xb = x.subarray(32 * ib, 32 * ib + 32)
    importanceWeights(x, qw, 32 * ib, 32, sigma2, w)
    const at = ib * bytes
    let qs = at + 2
    if (type === 'Q4_0' || type === 'Q5_0') {
      putF16(dst, at, makeQxQuantsWeighted(32, type === 'Q4_0' ? 8 : 16, xb, L, w))
      if (type === 'Q5_0') qs = at + 6
    } else {
      const [d, theMin] = fitAsymmetric(32, type === 'Q4_1' ? 15 : 31, xb, w, L)
      putF16(dst, at, d)
      putF16(dst, at + 2, -theMin)
      qs = type === 'Q4_1' ? at + 4 : at + 8
    }
    let qh = 0
    for (let j = 0; j < 16; j++) {
      dst[qs + j] = ((L[j] & 0xf) | ((L[j + 16] & 0xf) << 4)) & 0xff
      qh |= ((L[j] >> 4) & 1) << j
      qh |= ((L[j + 16] >> 4) & 1) << (j + 16)
    }
    if (type === 'Q5_0' || type === 'Q5_1') {
      const at4 = type === 'Q5_0' ? at + 2 : at + 4
      for (let k = 0; k < 4; k++) dst[at4 + k] = (qh >>> (8 * k)) & 0xff
    }
    // Q4_0 / Q4_1 levels are 0..15: C's `L[j] | (L[j+16] << 4)` equals the masked form above.
  }
}

/** Q2_K, Q4_K and Q5_K: weighted asymmetric fits, scales and mins fitted by make_qp_quants. */
function kAsymmetricRow(type: 'Q2_K' | 'Q4_K' | 'Q5_K', x: Float32Array, qw: Float32Array, dst: Uint8Array): void {
  const sub = type === 'Q2_K' ? 16 : 32
  const nsub = QK_K / sub
  const nmax = type === 'Q2_K' ? 3 : type === 'Q4_K' ? 15 : 31
  const bytes = BLOCK_GEOMETRY[type].bytes
  const w = new Float32Array(sub)
  const L = new Uint8Array(QK_K)
  const scales = new Float32Array(nsub),
    mins = new Float32Array(nsub),
    sw = new Float32Array(nsub)
  const Ls = new Uint8Array(nsub),
    Lm = new Uint8Array(nsub)
  for (let b = 0; b < x.length / QK_K; b++) {
    const base = b * QK_K
    const at = b * bytes
    const sumX2 = sumSquares(x, base, QK_K)
    const sigma2 = type === 'Q2_K' ? f32(sumX2 / QK_K) : f32(f32(2 * sumX2) / QK_K)
    for (let j = 0; j < nsub; j++) {
      importanceWeights(x, qw, base + sub * j, sub, sigma2, w)
      let s = 0
      for (let l = 0; l < sub; l++) s = f32(s + w[l])
      sw[j] = s
      const [scale, theMin] = fitAsymmetric(
        sub,
        nmax,
        x.subarray(base + sub * j, base + sub * (j + 1)),
        w,
        L.subarray(sub * j, sub * (j + 1)),
      )
      scales[j] = scale
      mins[j] = theMin
    }
    const qpMax = type === 'Q2_K' ? 15 : 63
    const dBlock = makeQpQuants(nsub, qpMax, scales, Ls, sw)
    const mBlock = makeQpQuants(nsub, qpMax, mins, Lm, sw)
    let dAll: number, dminAll: number
    const scaleOf: Array<[number, number]> = []
    if (type === 'Q2_K') {
      dAll = putF16(dst, at + 80, dBlock)
      dminAll = putF16(dst, at + 82, mBlock)
      for (let j = 0; j < 16; j++) {
        dst[at + j] = (Ls[j] | (Lm[j] << 4)) & 0xff
        scaleOf.push([dst[at + j] & 0xf, dst[at + j] >> 4])
      }
    } else {
      const packed = at + 4
      dst.fill(0, packed, packed + 12)
      for (let j = 0; j < 8; j++) {
        const ls = type === 'Q5_K' ? Math.min(63, Ls[j]) : Ls[j]
        const lm = type === 'Q5_K' ? Math.min(63, Lm[j]) : Lm[j]
        if (j < 4) {
          dst[packed + j] = ls
          dst[packed + j + 4] = lm
        } else {
          dst[packed + j + 4] = ((ls & 0xf) | ((lm & 0xf) << 4)) & 0xff
          dst[packed + j - 4] |= (ls >> 4) << 6
          dst[packed + j] |= (lm >> 4) << 6
        }
      }
      dAll = putF16(dst, at, dBlock)
      dminAll = putF16(dst, at + 2, mBlock)
      for (let j = 0; j < 8; j++) {
        scaleOf.push(
          j < 4
            ? [dst[packed + j] & 63, dst[packed + j + 4] & 63]
            : [
                (dst[packed + j + 4] & 0xf) | ((dst[packed + j - 4] >> 6) << 4),
                (dst[packed + j + 4] >> 4) | ((dst[packed + j] >> 6) << 4),
              ],
        )
      }
    }
    for (let j = 0; j < nsub; j++) {
      const d = f32(dAll * scaleOf[j][0])
      if (d === 0) continue
      const dm = f32(dminAll * scaleOf[j][1])
      for (let ii = 0; ii < sub; ii++) {
        L[sub * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f32(f32(x[base + sub * j + ii] + dm) / d))))
      }
    }
    if (type === 'Q2_K') {
      for (let half = 0; half < 2; half++) {
        for (let l = 0; l < 32; l++) {
          const e = 128 * half + l
          dst[at + 16 + 32 * half + l] = (L[e] | (L[e + 32] << 2) | (L[e + 64] << 4) | (L[e + 96] << 6)) & 0xff
        }
      }
    } else {
      const qh = at + 16
      const qs = type === 'Q5_K' ? at + 48 : at + 16
      if (type === 'Q5_K') dst.fill(0, qh, qh + 32)
      for (let g = 0; g < 4; g++) {
        for (let l = 0; l < 32; l++) {
          let l1 = L[64 * g + l],
            l2 = L[64 * g + 32 + l]
          if (type === 'Q5_K') {
            if (l1 > 15) {
              l1 -= 16
              dst[qh + l] |= 1 << (2 * g)
            }
            if (l2 > 15) {
              l2 -= 16
              dst[qh + l] |= 2 << (2 * g)
            }
          }
          dst[qs + 32 * g + l] = (l1 | (l2 << 4)) & 0xff
        }
      }
    }
  }
}

/** Q3_K and Q6_K: weighted symmetric fits per 16 (Q3_K also fits its 6-bit scales with make_qx_quants). */
function kSymmetricRow(type: 'Q3_K' | 'Q6_K', x: Float32Array, qw: Float32Array, dst: Uint8Array): void {
  const bytes = BLOCK_GEOMETRY[type].bytes
  const nmax = type === 'Q3_K' ? 4 : 32
  const w = new Float32Array(16)
  const L = new Uint8Array(QK_K)
  const scales = new Float32Array(16),
    sw = new Float32Array(16)
  const Ls = new Uint8Array(16)
  for (let b = 0; b < x.length / QK_K; b++) {
    const base = b * QK_K
    const at = b * bytes
    const sigma2 = f32(f32(2 * sumSquares(x, base, QK_K)) / QK_K)
    let maxScale = 0,
      maxAbsScale = 0
    for (let j = 0; j < 16; j++) {
      if (type === 'Q3_K') importanceWeights(x, qw, base + 16 * j, 16, sigma2, w)
      else w.set(qw.subarray(base + 16 * j, base + 16 * j + 16))
      let s = 0
      for (let l = 0; l < 16; l++) s = f32(s + w[l])
      sw[j] = s
      scales[j] = makeQxQuantsWeighted(
        16,
        nmax,
        x.subarray(base + 16 * j, base + 16 * j + 16),
        L.subarray(16 * j, 16 * j + 16),
        w,
      )
      if (Math.abs(scales[j]) > maxAbsScale) {
        maxAbsScale = Math.abs(scales[j])
        maxScale = scales[j]
      }
    }
    const stored: number[] = []
    let dAll: number
    if (type === 'Q3_K') {
      const packed = at + 96
      dst.fill(0, packed, packed + 12)
      const dBlock = makeQxQuantsWeighted(16, 32, scales, Ls, sw)
      for (let j = 0; j < 16; j++) {
        const l = Ls[j]
        if (j < 8) dst[packed + j] = l & 0xf
        else dst[packed + j - 8] |= (l & 0xf) << 4
        dst[packed + 8 + (j & 3)] |= ((l >> 4) << (2 * (j >> 2))) & 0xff
      }
      dAll = putF16(dst, at + 108, dBlock)
      for (let j = 0; j < 16; j++) stored.push(q3kScale(dst, packed, j) - 32)
    } else {
      if (maxAbsScale < GROUP_MAX_EPS) {
        dst.fill(0, at, at + 210)
        continue
      }
      const iscale = f32(-128 / maxScale)
      dAll = putF16(dst, at + 208, f32(1 / iscale))
      for (let j = 0; j < 16; j++) {
        dst[at + 192 + j] = Math.min(127, nearestInt(f32(iscale * scales[j]))) & 0xff
        stored.push((dst[at + 192 + j] << 24) >> 24)
      }
    }
    const lo = type === 'Q3_K' ? -4 : -32
    for (let j = 0; j < 16; j++) {
      const d = f32(dAll * stored[j])
      if (d === 0) continue
      for (let ii = 0; ii < 16; ii++) {
        L[16 * j + ii] = Math.max(lo, Math.min(-lo - 1, nearestInt(f32(x[base + 16 * j + ii] / d)))) - lo
      }
    }
    if (type === 'Q3_K') {
      dst.fill(0, at, at + 32)
      for (let e = 0; e < QK_K; e++)
        if (L[e] > 3) {
          dst[at + (e & 31)] |= 1 << (e >> 5)
          L[e] -= 4
        }
      for (let half = 0; half < 2; half++) {
        for (let l = 0; l < 32; l++) {
          const e = 128 * half + l
          dst[at + 32 + 32 * half + l] = (L[e] | (L[e + 32] << 2) | (L[e + 64] << 4) | (L[e + 96] << 6)) & 0xff
        }
      }
    } else {
      for (let half = 0; half < 2; half++) {
        const ql = at + 64 * half,
          qh = at + 128 + 32 * half,
          e = 128 * half
        for (let l = 0; l < 32; l++) {
          const q1 = L[e + l],
            q2 = L[e + l + 32],
            q3 = L[e + l + 64],
            q4 = L[e + l + 96]
          dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4)
          dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4)
          dst[qh + l] = ((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)) & 0xff
        }
      }
    }
  }
}

/**
 * Quantizes W [rows, cols] (row-major) to `type` with per-column importances `importance` [cols]
 * (imatrix Σx² / count), row by row as llama-quantize --imatrix does; `importance` null, or a type that
 * ignores it, gives the plain quantization.
 */
export function quantizeRowsWeighted(
  type: BlockType,
  w: Float32Array,
  rows: number,
  cols: number,
  importance: Float32Array | null,
  dst: Uint8Array,
): void {
  const { elements, bytes } = BLOCK_GEOMETRY[type]
  if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(cols) || cols < 1 || cols % elements !== 0) {
    throw new RangeError(
      `quantize ${type}: [${rows}, ${cols}] is not a whole number of ${elements}-element blocks per row`,
    )
  }
  if (w.length < rows * cols)
    throw new RangeError(`quantize ${type}: [${rows}, ${cols}] needs ${rows * cols} inputs, the source has ${w.length}`)
  const rowBytes = (cols / elements) * bytes
  if (dst.length < rows * rowBytes)
    throw new RangeError(
      `quantize ${type}: ${rows} rows need ${rows * rowBytes} bytes, the destination has ${dst.length}`,
    )
  if (importance && importance.length !== cols)
    throw new RangeError(`quantize ${type}: ${importance.length} importances for rows of ${cols}`)
  if (!importance || !IMATRIX_TYPES.includes(type)) {
    quantizeBlocks(type, w.subarray(0, rows * cols), rows * cols, dst)
    return
  }
  for (let r = 0; r < rows; r++) {
    const x = w.subarray(r * cols, (r + 1) * cols)
    const out = dst.subarray(r * rowBytes, (r + 1) * rowBytes)
    switch (type) {
      case 'Q4_0':
      case 'Q4_1':
      case 'Q5_0':
      case 'Q5_1':
        legacyRow(type, x, importance, out)
        break
      case 'Q2_K':
      case 'Q4_K':
      case 'Q5_K':
        kAsymmetricRow(type, x, importance, out)
        break
      case 'Q3_K':
      case 'Q6_K':
        kSymmetricRow(type, x, importance, out)
        break
      case 'IQ4_NL':
        quantizeIQ4_NL(x, cols / 32, out, importance)
        break
      case 'IQ4_XS':
        quantizeIQ4_XS(x, cols / 256, out, importance)
        break
    }
  }
}
