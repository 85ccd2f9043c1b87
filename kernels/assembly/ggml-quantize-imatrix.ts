// Quantization with an importance matrix (llama-quantize --imatrix, ggml 0.10.1 quantize_row_*_impl with
// quant_weights) for Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K; IQ4_NL / IQ4_XS are in
// ./ggml-quantize-iq. Twin: kernels/reference/ggml-quantize-imatrix.ts (quantizeRowsWeighted), which says
// what the weights change per type. Every fit is f32 in the twin's order (the fits are sequential
// searches); the per-group fits, which are most of the work, run in SIMD lanes, one group per lane, which
// changes no bit: the symmetric fits four groups at a time (./ggml-quantize-lanes), the asymmetric fits
// eight, two quads side by side (./ggml-quantize-asym); a group is a legacy block or a K-quant sub-block.
// The fits of a super-block's scales and mins stay scalar.
//
// Every kernel: src = rows × cols f32 (cols a whole number of blocks), dst = the rows' blocks back to back,
// qw = f32[cols] per-column importances, scratch = QUANT_SCRATCH_BYTES (8192; 5296 used) of any alignment
// for the per-block arrays below.

import { f16ToF32Scalar } from './convert'
import { f32ToF16, nearestInt } from './ggml-quantize'
import { q3kScale } from './ggml-dequant-kquants'
import { fitAsym8 } from './ggml-quantize-asym'
import { clampI, fitSymmetric4, nearestInt4, transpose4 } from './ggml-quantize-lanes'
import { asymmetricLevels, packQ3K, packQ45K, packQ6K, symmetricLevels16 } from './ggml-quantize-levels'

const GROUP_MAX_EPS: f32 = 1e-15
const ONE_TENTH: f32 = 0.1
// make_qkx3_quants' search in the weighted fits: rmin, rdelta, nstep.
const QKX3_RMIN: f32 = -0.9
const QKX3_RDELTA: f32 = 0.05
const QKX3_NSTEP = 36

// Scratch layout (byte offsets). The per-element regions XT, WT and LT hold two quads of groups (fitAsym8:
// quad B's n vectors follow quad A's) or one (fitSymmetric4 and the Q3_K fit use the first n vectors).
const SIGMA = 0 // f32[4] σ² of four consecutive rows (legacy types)
const SIGMA8 = 16 // f32[8] σ² of the eight lanes' rows
const PTRS = 48 // usize[16] (8 bytes each): the eight lanes' values, then their importances
const LV = 192 // u8[256] levels of the current block (legacy types: of the eight blocks)
const SCALES = 448 // f32[16]
const MINS = 512 // f32[16]
const SW = 576 // f32[16] summed weights per group
const LS = 640 // u8[16] quantized scales
const LM = 656 // u8[16] quantized mins
const XT = 1024 // v128[2][32] the groups' values, transposed (lane k of quad q = group 4q + k)
const WT = 2048 // v128[2][32] their weights, transposed
const LT = 3072 // v128[2][32] the lanes' trial levels
const MIN8 = 4096 // f32[8] the lanes' the_min
const SC8 = 4128 // f32[8] the lanes' scales
const SYMW = 4160 // SYM_WORK_BYTES (1136) of the lane fits' work space, to 5296
const SIGMA_ROWS = 4
const LEGACY_LANES = 8 // legacy blocks per fit: two quads

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2))
}

function sumSquares(x: usize, n: i32): f32 {
  let s: f32 = 0
  for (let j = 0; j < n; j++) {
    const v = f32At(x, j)
    s += v * v
  }
  return s
}

/**
 * make_qx_quants(n, nmax, x, L, 1, w): levels + nmax to u8 L; returns the scale (twin: makeQxQuantsWeighted).
 * The 19 trials' sums do not depend on each other, so they run four trials per vector (lane k: one trial,
 * its sums element by element as the scalar loop adds them) into `work` (160 bytes); the choice is then
 * made in the scalar order, and the levels are those of the winning trial's iscale.
 */
function fitSymmetric(n: i32, nmax: i32, x: usize, L: usize, w: usize, work: usize): f32 {
  let top: f32 = 0
  let amax: f32 = 0
  for (let i = 0; i < n; i++) {
    const v = f32At(x, i)
    if (abs<f32>(v) > amax) { amax = abs<f32>(v); top = v }
  }
  if (amax < GROUP_MAX_EPS) { memory.fill(L, 0, n); return 0 }
  const topV = f32x4.splat(top)
  for (let t0 = 0; t0 < 20; t0 += 4) {
    // Trials t0..t0+3 are is = t − 9 (t = 19 repeats is = 9 and is not read).
    const iscale = f32x4.div(
      f32x4(
        -(<f32>nmax + ONE_TENTH * <f32>(t0 - 9)),
        -(<f32>nmax + ONE_TENTH * <f32>(t0 - 8)),
        -(<f32>nmax + ONE_TENTH * <f32>(t0 - 7)),
        -(<f32>nmax + ONE_TENTH * <f32>min<i32>(t0 - 6, 9)),
      ),
      topV,
    )
    let sumlx = f32x4.splat(0)
    let suml2 = f32x4.splat(0)
    for (let i = 0; i < n; i++) {
      const v = f32x4.splat(f32At(x, i))
      const wi = f32x4.splat(f32At(w, i))
      const l = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscale, v)), -nmax, nmax - 1))
      sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(wi, v), l))
      suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(wi, l), l))
    }
    v128.store(work + (<usize>t0 << 2), sumlx)
    v128.store(work + (<usize>t0 << 2), suml2, 80)
  }
  let sumlx = f32At(work, 9)
  let suml2 = f32At(work + 80, 9)
  let scale: f32 = suml2 != 0 ? sumlx / suml2 : 0
  let best = scale * sumlx
  let bestIscale: f32 = <f32>-nmax / top
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue
    sumlx = f32At(work, is + 9)
    suml2 = f32At(work + 80, is + 9)
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      bestIscale = -(<f32>nmax + ONE_TENTH * <f32>is) / top
      scale = sumlx / suml2
      best = scale * sumlx
    }
  }
  for (let i = 0; i < n; i++) {
    store<u8>(L + <usize>i, <u8>(nmax + max<i32>(-nmax, min<i32>(nmax - 1, nearestInt(bestIscale * f32At(x, i))))))
  }
  return scale
}

/** make_qp_quants(n, nmax, x, L, w) for non-negative x (twin: makeQpQuants); L is u8 (levels wrap). */
function fitPositive(n: i32, nmax: i32, x: usize, L: usize, w: usize): f32 {
  let top: f32 = 0
  for (let i = 0; i < n; i++) top = top > f32At(x, i) ? top : f32At(x, i)
  if (top < GROUP_MAX_EPS) { memory.fill(L, 0, n); return 0 }
  let iscale: f32 = <f32>nmax / top
  for (let i = 0; i < n; i++) store<u8>(L + <usize>i, <u8>nearestInt(iscale * f32At(x, i)))
  const scale: f32 = 1 / iscale
  let bestMse: f32 = 0
  for (let i = 0; i < n; i++) {
    const diff = f32At(x, i) - scale * <f32>load<u8>(L + <usize>i)
    bestMse += f32At(w, i) * diff * diff
  }
  for (let is = -4; is <= 4; is++) {
    if (is == 0) continue
    const iscaleIs: f32 = (ONE_TENTH * <f32>is + <f32>nmax) / top
    const scaleIs: f32 = 1 / iscaleIs
    let mse: f32 = 0
    for (let i = 0; i < n; i++) {
      const l = min<i32>(nmax, nearestInt(iscaleIs * f32At(x, i)))
      const diff = f32At(x, i) - scaleIs * <f32>l
      mse += f32At(w, i) * diff * diff
    }
    if (mse < bestMse) { bestMse = mse; iscale = iscaleIs }
  }
  let sumlx: f32 = 0
  let suml2: f32 = 0
  for (let i = 0; i < n; i++) {
    const l = min<i32>(nmax, nearestInt(iscale * f32At(x, i)))
    store<u8>(L + <usize>i, <u8>l)
    const wi = f32At(w, i)
    sumlx += wi * f32At(x, i) * <f32>l
    suml2 += wi * <f32>l * <f32>l
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0
    for (let i = 0; i < n; i++) {
      const wi = f32At(w, i)
      const v = f32At(x, i)
      const li = <i32>load<u8>(L + <usize>i)
      let slx = sumlx - wi * v * <f32>li
      let sl2 = suml2 - wi * <f32>li * <f32>li
      if (slx > 0 && sl2 > 0) {
        const newL = min<i32>(nmax, nearestInt(v * sl2 / slx))
        if (newL != li) {
          slx += wi * v * <f32>newL
          sl2 += wi * <f32>newL * <f32>newL
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            store<u8>(L + <usize>i, <u8>newL)
            sumlx = slx
            suml2 = sl2
            changed++
          }
        }
      }
    }
    if (changed == 0) break
  }
  return suml2 > 0 ? sumlx / suml2 : 0
}

/** Σ of the n transposed weights per lane, element by element from 0 (the scalar groups' sum order), to dst. */
function laneWeightSums(n: i32, wT: usize, dst: usize): void {
  let sw = f32x4.splat(0)
  for (let j = 0; j < n; j++) sw = f32x4.add(sw, v128.load(wT + (<usize>j << 4)))
  v128.store(dst, sw)
}

/**
 * The four groups' values (at x0..x3) to XT + quad and their weights qw · sqrt(σ² + x²) to WT + quad (lane
 * k: group k, with σ² lane k of sigma2): the importances are transposed, then weighed in place, lane by lane.
 * `quad` is the byte offset of the quad's vectors in XT and WT (0, or n·16 for fitAsym8's quad B).
 */
function transposeWeighted4(
  n: i32,
  x0: usize,
  x1: usize,
  x2: usize,
  x3: usize,
  q0: usize,
  q1: usize,
  q2: usize,
  q3: usize,
  sigma2: v128,
  s: usize,
  quad: usize,
): void {
  const xT = s + XT + quad, wT = s + WT + quad
  transpose4(n, x0, x1, x2, x3, xT)
  transpose4(n, q0, q1, q2, q3, wT)
  for (let i = 0; i < n; i++) {
    const at = <usize>i << 4
    const v = v128.load(xT + at)
    v128.store(wT + at, f32x4.mul(v128.load(wT + at), f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v)))))
  }
}

/**
 * Σx² / cols of rows r..r+3 (all < rows) in four lanes, each row's sum element by element from 0 as
 * sumSquares does, to dst (f32[4]).
 */
function rowMeanSquares4(src: usize, r: i32, cols: i32, dst: usize): void {
  const stride = <usize>cols << 2
  const p0 = src + <usize>r * stride
  let acc = f32x4.splat(0)
  for (let c = 0; c < cols; c += 4) {
    const at = <usize>c << 2
    const a0 = v128.load(p0 + at)
    const a1 = v128.load(p0 + stride + at)
    const a2 = v128.load(p0 + 2 * stride + at)
    const a3 = v128.load(p0 + 3 * stride + at)
    const lo01 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5)
    const hi01 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7)
    const lo23 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5)
    const hi23 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7)
    const t0 = v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5)
    const t1 = v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7)
    const t2 = v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5)
    const t3 = v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7)
    acc = f32x4.add(acc, f32x4.mul(t0, t0))
    acc = f32x4.add(acc, f32x4.mul(t1, t1))
    acc = f32x4.add(acc, f32x4.mul(t2, t2))
    acc = f32x4.add(acc, f32x4.mul(t3, t3))
  }
  v128.store(dst, f32x4.div(acc, f32x4.splat(<f32>cols)))
}

/**
 * Legacy 32-element types (kind 0 Q4_0, 1 Q4_1, 2 Q5_0, 3 Q5_1): one weighted fit per block, σ² per row;
 * eight consecutive blocks (across rows) per fit, two quads of four lanes, the last group padded with copies
 * of the last block.
 * The rows' σ² are computed four rows at a time where four rows remain (the same sums, in lanes).
 */
function legacyRows(kind: i32, src: usize, dst: usize, rows: i32, cols: i32, qw: usize, s: usize): void {
  const bytes: usize = kind == 0 ? 18 : kind == 1 ? 20 : kind == 2 ? 22 : 24
  const nmax = kind == 0 ? 8 : kind == 1 ? 15 : kind == 2 ? 16 : 31
  const perRow = cols >> 5
  const total = rows * perRow
  let sigmaBase = -SIGMA_ROWS // rows sigmaBase.. have their σ² at s + SIGMA
  for (let b0 = 0; b0 < total; b0 += LEGACY_LANES) {
    for (let k = 0; k < LEGACY_LANES; k++) {
      const b = min<i32>(b0 + k, total - 1)
      const r = b / perRow
      if (r >= sigmaBase + SIGMA_ROWS) {
        sigmaBase = r
        if (r + SIGMA_ROWS <= rows) rowMeanSquares4(src, r, cols, s + SIGMA)
        else {
          for (let j = 0; j < SIGMA_ROWS && r + j < rows; j++) {
            const sum = sumSquares(src + (<usize>(r + j) * <usize>cols << 2), cols)
            store<f32>(s + SIGMA + (<usize>j << 2), sum / <f32>cols)
          }
        }
      }
      store<f32>(s + SIGMA8 + (<usize>k << 2), f32At(s + SIGMA, r - sigmaBase))
      store<usize>(s + PTRS + (<usize>k << 3), src + (<usize>b << 7))
      store<usize>(s + PTRS + (<usize>k << 3), qw + (<usize>(b - r * perRow) << 7), LEGACY_LANES * 8)
    }
    for (let q = 0; q < 2; q++) {
      const p = s + PTRS + (<usize>q << 5) // lanes 4q…4q+3: values at p, importances 64 bytes on
      transposeWeighted4(
        32,
        load<usize>(p),
        load<usize>(p, 8),
        load<usize>(p, 16),
        load<usize>(p, 24),
        load<usize>(p, 64),
        load<usize>(p, 72),
        load<usize>(p, 80),
        load<usize>(p, 88),
        v128.load(s + SIGMA8 + (<usize>q << 4)),
        s,
        <usize>q << 9,
      )
    }
    if (kind == 0 || kind == 2) {
      v128.store(s + SC8, fitSymmetric4(32, nmax, s + XT, s + WT, s + LT, s + LV, 32, s + SYMW))
      v128.store(s + SC8, fitSymmetric4(32, nmax, s + XT + 512, s + WT + 512, s + LT, s + LV + 128, 32, s + SYMW), 16)
    } else {
      fitAsym8(32, nmax, s + XT, s + WT, s + LT, s + LV, 32, s + MIN8, s + SC8, s + SYMW, QKX3_RMIN, QKX3_RDELTA,
        QKX3_NSTEP, false)
    }
    for (let k = 0; k < LEGACY_LANES && b0 + k < total; k++) {
      const y = dst + <usize>(b0 + k) * bytes
      const lv = s + LV + (<usize>k << 5)
      const d = f32At(s + SC8, k)
      let qs = y + 2
      store<u16>(y, <u16>f32ToF16(d))
      if (kind == 2) qs = y + 6
      if (kind == 1 || kind == 3) {
        store<u16>(y, <u16>f32ToF16(-f32At(s + MIN8, k)), 2)
        qs = kind == 1 ? y + 4 : y + 8
      }
      let qh: u32 = 0
      for (let j = 0; j < 16; j++) {
        const a = <u32>load<u8>(lv + <usize>j)
        const c = <u32>load<u8>(lv + <usize>(j + 16))
        store<u8>(qs + <usize>j, <u8>((a & 0xf) | ((c & 0xf) << 4)))
        qh |= ((a >> 4) & 1) << <u32>j
        qh |= ((c >> 4) & 1) << <u32>(j + 16)
      }
      if (kind == 2) store<u32>(y, qh, 2)
      if (kind == 3) store<u32>(y, qh, 4)
    }
  }
}

export function quantize_q4_0_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  legacyRows(0, src, dst, rows, cols, qw, scratch)
}
export function quantize_q4_1_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  legacyRows(1, src, dst, rows, cols, qw, scratch)
}
export function quantize_q5_0_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  legacyRows(2, src, dst, rows, cols, qw, scratch)
}
export function quantize_q5_1_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  legacyRows(3, src, dst, rows, cols, qw, scratch)
}

/** Q4_K / Q5_K sub-block j's 6-bit scale (min = false) or min from the 12 packed bytes. */
// @ts-ignore: decorator
@inline function packed6(p: usize, j: i32, wantMin: bool): u32 {
  if (j < 4) return <u32>load<u8>(p + <usize>(wantMin ? j + 4 : j)) & 63
  const low = <u32>load<u8>(p + <usize>(j + 4))
  return wantMin ? (low >> 4) | ((<u32>load<u8>(p + <usize>j) >> 6) << 4) : (low & 0xf) | ((<u32>load<u8>(p + <usize>(j - 4)) >> 6) << 4)
}

/** Q2_K (kind 0), Q4_K (1), Q5_K (2): weighted asymmetric fits; scales and mins fitted by make_qp_quants. */
function kAsymRows(kind: i32, src: usize, dst: usize, rows: i32, cols: i32, qw: usize, s: usize): void {
  const sub = kind == 0 ? 16 : 32
  const nsub = 256 / sub
  const nmax = kind == 0 ? 3 : kind == 1 ? 15 : 31
  const bytes: usize = kind == 0 ? 84 : kind == 1 ? 144 : 176
  const perRow = cols >> 8
  const L = s + LV
  for (let blk = 0; blk < rows * perRow; blk++) {
    const x = src + (<usize>blk << 10)
    const col = (blk % perRow) << 8
    const y = dst + <usize>blk * bytes
    const sumX2 = sumSquares(x, 256)
    const sigma2: f32 = kind == 0 ? sumX2 / 256 : <f32>2 * sumX2 / 256
    // Sub-blocks j0…j0+7 per fit: j0…j0+3 are quad A, the next four quad B (sub·16 bytes on in XT and WT).
    for (let j0 = 0; j0 < nsub; j0 += 8) {
      const step = <usize>sub << 2
      for (let q = 0; q < 2; q++) {
        const j = j0 + 4 * q
        const xs = x + (<usize>(sub * j) << 2)
        const qj = qw + (<usize>(col + sub * j) << 2)
        const quad = <usize>q * (<usize>sub << 4)
        transposeWeighted4(sub, xs, xs + step, xs + 2 * step, xs + 3 * step, qj, qj + step, qj + 2 * step, qj + 3 * step, f32x4.splat(sigma2), s, quad)
        laneWeightSums(sub, s + WT + quad, s + SW + (<usize>j << 2))
      }
      fitAsym8(sub, nmax, s + XT, s + WT, s + LT, L + <usize>(sub * j0), sub, s + MINS + (<usize>j0 << 2),
        s + SCALES + (<usize>j0 << 2), s + SYMW, QKX3_RMIN, QKX3_RDELTA, QKX3_NSTEP, false)
    }
    const qpMax = kind == 0 ? 15 : 63
    const dBlock = fitPositive(nsub, qpMax, s + SCALES, s + LS, s + SW)
    const mBlock = fitPositive(nsub, qpMax, s + MINS, s + LM, s + SW)
    let dAll: f32, dminAll: f32
    const packed = y + 4
    if (kind == 0) {
      const dBits = f32ToF16(dBlock), mBits = f32ToF16(mBlock)
      store<u16>(y, <u16>dBits, 80)
      store<u16>(y, <u16>mBits, 82)
      dAll = f16ToF32Scalar(dBits)
      dminAll = f16ToF32Scalar(mBits)
      for (let j = 0; j < 16; j++) store<u8>(y + <usize>j, <u8>(<u32>load<u8>(s + LS + <usize>j) | (<u32>load<u8>(s + LM + <usize>j) << 4)))
    } else {
      memory.fill(packed, 0, 12)
      for (let j = 0; j < 8; j++) {
        let ls = <u32>load<u8>(s + LS + <usize>j)
        let lm = <u32>load<u8>(s + LM + <usize>j)
        if (kind == 2) { ls = min<u32>(63, ls); lm = min<u32>(63, lm) }
        if (j < 4) {
          store<u8>(packed + <usize>j, <u8>ls)
          store<u8>(packed + <usize>(j + 4), <u8>lm)
        } else {
          store<u8>(packed + <usize>(j + 4), <u8>((ls & 0xf) | ((lm & 0xf) << 4)))
          store<u8>(packed + <usize>(j - 4), <u8>(<u32>load<u8>(packed + <usize>(j - 4)) | ((ls >> 4) << 6)))
          store<u8>(packed + <usize>j, <u8>(<u32>load<u8>(packed + <usize>j) | ((lm >> 4) << 6)))
        }
      }
      const dBits = f32ToF16(dBlock), mBits = f32ToF16(mBlock)
      store<u16>(y, <u16>dBits)
      store<u16>(y, <u16>mBits, 2)
      dAll = f16ToF32Scalar(dBits)
      dminAll = f16ToF32Scalar(mBits)
    }
    for (let j = 0; j < nsub; j++) {
      const sc = kind == 0 ? <u32>load<u8>(y + <usize>j) & 0xf : packed6(packed, j, false)
      const m = kind == 0 ? <u32>load<u8>(y + <usize>j) >> 4 : packed6(packed, j, true)
      const d = dAll * <f32>sc
      if (d == 0) continue
      asymmetricLevels(sub, x + (<usize>(sub * j) << 2), d, dminAll * <f32>m, nmax, L + <usize>(sub * j))
    }
    if (kind == 0) {
      for (let e: usize = 0; e < 256; e += 128) {
        for (let l: usize = 0; l < 32; l++) {
          const v = <u32>load<u8>(L + e + l) | (<u32>load<u8>(L + e + l + 32) << 2) |
            (<u32>load<u8>(L + e + l + 64) << 4) | (<u32>load<u8>(L + e + l + 96) << 6)
          store<u8>(y + 16 + (e >> 2) + l, <u8>v)
        }
      }
    } else {
      packQ45K(L, y, kind == 2)
    }
  }
}

export function quantize_q2_k_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  kAsymRows(0, src, dst, rows, cols, qw, scratch)
}
export function quantize_q4_k_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  kAsymRows(1, src, dst, rows, cols, qw, scratch)
}
export function quantize_q5_k_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  kAsymRows(2, src, dst, rows, cols, qw, scratch)
}

/** Q3_K (q6 = false) and Q6_K (q6 = true): weighted symmetric fits per 16. */
function kSymRows(q6: bool, src: usize, dst: usize, rows: i32, cols: i32, qw: usize, s: usize): void {
  const bytes: usize = q6 ? 210 : 110
  const nmax = q6 ? 32 : 4
  const perRow = cols >> 8
  const L = s + LV
  for (let blk = 0; blk < rows * perRow; blk++) {
    const x = src + (<usize>blk << 10)
    const col = (blk % perRow) << 8
    const y = dst + <usize>blk * bytes
    const sigma2: f32 = q6 ? 0 : (<f32>2 * sumSquares(x, 256)) / 256 // Q6_K weighs by the importances alone
    let maxScale: f32 = 0
    let maxAbsScale: f32 = 0
    for (let j0 = 0; j0 < 16; j0 += 4) {
      // Sub-blocks j0..j0+3, 64 bytes apart; Q6_K weighs by the importances alone.
      const xs = x + (<usize>(16 * j0) << 2)
      const qj = qw + (<usize>(col + 16 * j0) << 2)
      if (!q6) transposeWeighted4(16, xs, xs + 64, xs + 128, xs + 192, qj, qj + 64, qj + 128, qj + 192, f32x4.splat(sigma2), s, 0)
      else {
        transpose4(16, xs, xs + 64, xs + 128, xs + 192, s + XT)
        transpose4(16, qj, qj + 64, qj + 128, qj + 192, s + WT)
      }
      laneWeightSums(16, s + WT, s + SW + (<usize>j0 << 2))
      v128.store(s + SCALES + (<usize>j0 << 2), fitSymmetric4(16, nmax, s + XT, s + WT, s + LT, L + <usize>(16 * j0), 16, s + SYMW))
    }
    for (let j = 0; j < 16; j++) {
      const scale = f32At(s + SCALES, j)
      if (abs<f32>(scale) > maxAbsScale) { maxAbsScale = abs<f32>(scale); maxScale = scale }
    }
    let dAll: f32
    if (!q6) {
      const packed = y + 96
      memory.fill(packed, 0, 12)
      const dBlock = fitSymmetric(16, 32, s + SCALES, s + LS, s + SW, s + SYMW)
      for (let j = 0; j < 16; j++) {
        const l = <u32>load<u8>(s + LS + <usize>j)
        if (j < 8) store<u8>(packed + <usize>j, <u8>(l & 0xf))
        else store<u8>(packed + <usize>(j - 8), <u8>(<u32>load<u8>(packed + <usize>(j - 8)) | ((l & 0xf) << 4)))
        const at = packed + 8 + <usize>(j & 3)
        store<u8>(at, <u8>(<u32>load<u8>(at) | ((l >> 4) << <u32>(2 * (j >> 2)))))
      }
      const dBits = f32ToF16(dBlock)
      store<u16>(y, <u16>dBits, 108)
      dAll = f16ToF32Scalar(dBits)
    } else {
      if (maxAbsScale < GROUP_MAX_EPS) { memory.fill(y, 0, 210); continue }
      const iscale: f32 = <f32>-128 / maxScale
      const dBits = f32ToF16(1 / iscale)
      store<u16>(y, <u16>dBits, 208)
      dAll = f16ToF32Scalar(dBits)
      for (let j = 0; j < 16; j++) {
        store<i8>(y + 192 + <usize>j, <i8>min<i32>(127, nearestInt(iscale * f32At(s + SCALES, j))))
      }
    }
    for (let j = 0; j < 16; j++) {
      const sc = q6 ? <i32>load<i8>(y + 192 + <usize>j) : q3kScale(y + 96, j) - 32
      const d = dAll * <f32>sc
      if (d == 0) continue
      symmetricLevels16(x + (<usize>j << 6), d, nmax, L + (<usize>j << 4))
    }
    if (!q6) {
      packQ3K(L, y)
    } else {
      packQ6K(L, y)
    }
  }
}

export function quantize_q3_k_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  kSymRows(false, src, dst, rows, cols, qw, scratch)
}
export function quantize_q6_k_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  kSymRows(true, src, dst, rows, cols, qw, scratch)
}
