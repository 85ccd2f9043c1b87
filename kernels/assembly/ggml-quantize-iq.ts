// f32 -> the non-linear 4-bit types IQ4_NL and IQ4_XS, byte-exact with llama.cpp (ggml 0.10.1)
// quantize_iq4_nl / quantize_iq4_xs, with or without an importance matrix (quantize_row_iq4_nl_impl, ntry = 7).
// Twin: kernels/reference/ggml-quantize-iq.ts.
//
// Speed (issue #13): the scale fit runs four 32-element groups at a time in SIMD lanes (four IQ4_NL blocks,
// or four sub-blocks of an IQ4_XS super-block), each lane doing the twin's f32 operations in its order, so
// the bytes are the twin's. The twin's best_index_int8 is a branchy binary search whose tie rule compares
// two rounded f32 differences; here the index is 15 − #{i : x < (grid[i] + grid[i+1]) / 2}, branch-free
// comparisons against the (exactly representable) midpoints. The two agree on every one of the 2^32 f32
// bit patterns, NaN and infinities included (checked exhaustively in C; the twin's gridIndexByMidpoints is
// held to bestIndex near every midpoint by kernels/test/ggml-iq4-lanes.test.ts). The count is taken in two
// steps (three comparisons pick a bucket of four indices, three more place x in it: see gridIndex), 20–25%
// less CPU than fifteen comparisons; the grid value of an index comes from one byte swizzle of the grid.
//
// Every kernel takes a `scratch` pointer (QUANT_SCRATCH_BYTES, any alignment) for the transposed groups,
// their weights, the comparison table and IQ4_XS's eight scales; the *_imatrix kernels quantize whole rows
// with llama-quantize's importance weights (quant_weights).

import { f32ToF16, nearestInt } from './ggml-quantize'
import { largestMagnitude, transpose4 } from './ggml-quantize-lanes'

const GROUP_MAX_EPS: f32 = 1e-15
const GRID_MIN: f32 = -127 // kvalues_iq4nl[0]

// Scratch layout (bytes): xT and wT hold 32 elements × 4 lanes; then the index search's tables (loaded per
// use: V8 would rebuild a 128-bit constant at every use): COARSE the splats of midpoints 3, 7 and 11, FINE
// three vectors [m(k), m(4 + k), m(8 + k), m(12 + k)] for k = 0..2, the byte patterns BUCKET_TOP and
// BUCKET_STEP, and the grid as 16 bytes.
const XT: usize = 0
const WT: usize = 512
const TABLE: usize = 1024
const COARSE: usize = TABLE
const FINE: usize = COARSE + 48
const BUCKET_TOP: usize = FINE + 48
const BUCKET_STEP: usize = BUCKET_TOP + 16
const GRID_BYTES: usize = BUCKET_STEP + 16
const SCALES: usize = GRID_BYTES + 16 // IQ4_XS: eight f32 sub-block scales

// llama.cpp's kvalues_iq4nl (twin: IQ4_VALUES); fillTable derives the midpoints (twin: IQ4_MIDPOINTS).
const GRID: usize = memory.data<i8>([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113])

/** Midpoint i, (grid[i] + grid[i + 1]) / 2: an integer or a half, exact in f32. */
// @ts-ignore: decorator
@inline function midpoint(i: i32): f32 {
  return <f32>(<i32>load<i8>(GRID + <usize>i) + <i32>load<i8>(GRID + <usize>(i + 1))) * <f32>0.5
}

/** Fills the index search's tables at scratch + TABLE (once per kernel call). */
function fillTable(scratch: usize): void {
  for (let c = 0; c < 3; c++) v128.store(scratch + COARSE + (<usize>c << 4), f32x4.splat(midpoint(4 * c + 3)))
  for (let k = 0; k < 3; k++) {
    for (let c = 0; c < 4; c++) store<f32>(scratch + FINE + (<usize>k << 4) + (<usize>c << 2), midpoint(4 * c + k))
  }
  // Bucket c's bytes are 4c, 4c + 1, 4c + 2, 4c + 3: the four bytes of FINE's f32 lane c.
  v128.store(scratch + BUCKET_TOP, i32x4.splat(0x0f0e0d0c)) // c = 3
  v128.store(scratch + BUCKET_STEP, i32x4.splat(0x04040404))
  v128.store(scratch + GRID_BYTES, v128.load(GRID))
}

// @ts-ignore: decorator
@inline function below(y: v128, p: usize): v128 {
  return f32x4.lt(y, v128.load(p))
}

/**
 * best_index_int8(16, grid, y) per lane, as 15 − #{i : y < midpoint i} in two steps. Midpoints 3, 7 and 11
 * pick the bucket c (3 − how many of them lie above y), so that the index is 4c + 3 − #{k < 3 : y <
 * midpoint 4c + k}; those three midpoints come from FINE by a byte swizzle with the bucket's bytes. NaN is
 * below nothing: bucket 3, index 15. The bucket's top byte, 4c + 3, starts the count.
 */
// @ts-ignore: decorator
@inline function gridIndex(y: v128, t: usize): v128 {
  const step = v128.load(t + BUCKET_STEP - TABLE)
  const bucket = i32x4.sub(
    i32x4.sub(v128.load(t + BUCKET_TOP - TABLE), v128.and(step, below(y, t + COARSE - TABLE))),
    i32x4.add(v128.and(step, below(y, t + COARSE - TABLE + 16)), v128.and(step, below(y, t + COARSE - TABLE + 32))),
  )
  const f0 = f32x4.lt(y, i8x16.swizzle(v128.load(t + FINE - TABLE), bucket))
  const f1 = f32x4.lt(y, i8x16.swizzle(v128.load(t + FINE - TABLE + 16), bucket))
  const f2 = f32x4.lt(y, i8x16.swizzle(v128.load(t + FINE - TABLE + 32), bucket))
  return i32x4.add(i32x4.add(i32x4.shr_u(bucket, 24), f0), i32x4.add(f1, f2))
}

/** grid[index] per lane as f32: the index's low byte picks a grid byte, sign-extended. */
// @ts-ignore: decorator
@inline function gridValue(index: v128, grid: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.shr_s(i32x4.shl(i8x16.swizzle(grid, index), 24), 24))
}

// @ts-ignore: decorator
@inline function at(p: usize, j: i32): v128 {
  return v128.load(p + (<usize>j << 4))
}

/**
 * The fitted scales of the four groups in xT (weights wT): grids max / 127 and (itry − 127) / max for
 * itry = −7..7, the best weighted least-squares fit; 0 in a lane whose group is all (near) zero.
 */
function fit4(scratch: usize): v128 {
  const xT = scratch + XT
  const wT = scratch + WT
  const table = scratch + TABLE
  const grid = v128.load(scratch + GRID_BYTES)
  const zero = f32x4.splat(0)
  const top = largestMagnitude(xT, 32)
  // A flat lane runs on with garbage and is zeroed at the end, as the scalar fit returns 0 for it.
  const flat = f32x4.lt(f32x4.abs(top), f32x4.splat(GROUP_MAX_EPS))
  const first = f32x4.div(f32x4.splat(1), f32x4.div(f32x4.neg(top), f32x4.splat(GRID_MIN)))
  let d = zero
  let best = zero
  // itry = −8 stands for the first grid, max / 127; then itry = −7..7.
  for (let itry = -8; itry <= 7; itry++) {
    const id = itry < -7 ? first : f32x4.div(f32x4.splat(<f32>(itry - 127)), top)
    let sumqx = zero
    let sumq2 = zero
    for (let j = 0; j < 32; j++) {
      const v = at(xT, j)
      const q = gridValue(gridIndex(f32x4.mul(id, v), table), grid)
      const wq = f32x4.mul(at(wT, j), q)
      sumqx = f32x4.add(sumqx, f32x4.mul(wq, v))
      sumq2 = f32x4.add(sumq2, f32x4.mul(wq, q))
    }
    const fitted = f32x4.div(sumqx, sumq2)
    const positive = f32x4.gt(sumq2, zero)
    if (itry < -7) {
      d = v128.and(fitted, positive)
      best = f32x4.mul(d, sumqx)
    } else {
      const better = v128.and(positive, f32x4.gt(f32x4.mul(sumqx, sumqx), f32x4.mul(best, sumq2)))
      d = v128.bitselect(fitted, d, better)
      best = v128.bitselect(f32x4.mul(fitted, sumqx), best, better)
    }
  }
  return v128.andnot(d, flat)
}

/** 16 bytes at qs: grid indices of x[j] · inv (low nibble) and x[j + 16] · inv (high nibble). */
function packGroup(x: usize, inv: f32, qs: usize, table: usize): void {
  const scale = f32x4.splat(inv)
  const c0 = packFour(x, scale, table, 0)
  const c1 = packFour(x, scale, table, 4)
  const c2 = packFour(x, scale, table, 8)
  const c3 = packFour(x, scale, table, 12)
  v128.store(qs, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(c0, c1), i16x8.narrow_i32x4_u(c2, c3)))
}

// @ts-ignore: decorator
@inline function packFour(x: usize, scale: v128, table: usize, j: i32): v128 {
  const low = gridIndex(f32x4.mul(scale, v128.load(x + (<usize>j << 2))), table)
  const high = gridIndex(f32x4.mul(scale, v128.load(x + (<usize>(j + 16) << 2))), table)
  return v128.or(low, i32x4.shl(high, 4))
}

/** wT = x² per lane (the weights without an importance matrix). */
function squareWeights(scratch: usize): void {
  for (let j = 0; j < 32; j++) {
    const v = at(scratch + XT, j)
    v128.store(scratch + WT + (<usize>j << 4), f32x4.mul(v, v))
  }
}

/** wT = wT · sqrt(σ² + x²) per lane, wT holding the transposed importances (σ²: each lane's). */
function importanceWeights(scratch: usize, sigma2: v128): void {
  for (let j = 0; j < 32; j++) {
    const v = at(scratch + XT, j)
    const w = at(scratch + WT, j)
    v128.store(scratch + WT + (<usize>j << 4), f32x4.mul(w, f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v)))))
  }
}

/**
 * IQ4_NL blocks first..first+3 (fewer at the end: the last block repeats in the spare lanes, unstored).
 * qw: the importances of a row (the block's columns at qw + (block mod perRow) · 128), or 0.
 */
function fourNL(src: usize, dst: usize, first: i32, count: i32, qw: usize, perRow: i32, scratch: usize): void {
  const last = count - 1
  const b0 = first
  const b1 = first + min<i32>(1, last)
  const b2 = first + min<i32>(2, last)
  const b3 = first + min<i32>(3, last)
  transpose4(32, src + (<usize>b0 << 7), src + (<usize>b1 << 7), src + (<usize>b2 << 7), src + (<usize>b3 << 7), scratch + XT)
  if (qw == 0) squareWeights(scratch)
  else {
    const q0 = qw + (<usize>(b0 % perRow) << 7)
    const q1 = qw + (<usize>(b1 % perRow) << 7)
    const q2 = qw + (<usize>(b2 % perRow) << 7)
    const q3 = qw + (<usize>(b3 % perRow) << 7)
    transpose4(32, q0, q1, q2, q3, scratch + WT)
    // σ² = 2 · mean square of each block, summed element by element as the twin does.
    let sigma2 = f32x4.splat(0)
    for (let j = 0; j < 32; j++) {
      const v = at(scratch + XT, j)
      sigma2 = f32x4.add(sigma2, f32x4.mul(v, v))
    }
    importanceWeights(scratch, f32x4.mul(sigma2, f32x4.splat(<f32>2 / <f32>32)))
  }
  const scales = fit4(scratch)
  storeNL(src, dst, b0, f32x4.extract_lane(scales, 0), scratch)
  if (count > 1) storeNL(src, dst, b1, f32x4.extract_lane(scales, 1), scratch)
  if (count > 2) storeNL(src, dst, b2, f32x4.extract_lane(scales, 2), scratch)
  if (count > 3) storeNL(src, dst, b3, f32x4.extract_lane(scales, 3), scratch)
}

// @ts-ignore: decorator
@inline function storeNL(src: usize, dst: usize, block: i32, scale: f32, scratch: usize): void {
  const y = dst + <usize>block * 18
  store<u16>(y, <u16>f32ToF16(scale))
  // C computes the levels with 1 / scale in f32, not the stored fp16 scale.
  packGroup(src + (<usize>block << 7), scale != 0 ? 1 / scale : 0, y + 2, scratch + TABLE)
}

/** One IQ4_XS block of 256 at x to y (qw: its importances, or 0). */
function blockXS(x: usize, y: usize, qw: usize, scratch: usize): void {
  const scales = scratch + SCALES
  let sigma2: f32 = 0
  if (qw != 0) {
    // σ² = 2 · mean square of the whole super-block, summed element by element as the twin does.
    for (let j = 0; j < 256; j++) {
      const v = load<f32>(x + (<usize>j << 2))
      sigma2 += v * v
    }
    sigma2 *= <f32>2 / <f32>256
  }
  for (let half = 0; half < 2; half++) {
    const at = <usize>half << 9 // four sub-blocks of 128 bytes
    transpose4(32, x + at, x + at + 128, x + at + 256, x + at + 384, scratch + XT)
    if (qw == 0) squareWeights(scratch)
    else {
      transpose4(32, qw + at, qw + at + 128, qw + at + 256, qw + at + 384, scratch + WT)
      importanceWeights(scratch, f32x4.splat(sigma2))
    }
    v128.store(scales + (<usize>half << 4), fit4(scratch))
  }
  let maxScale: f32 = 0
  let amaxScale: f32 = 0
  for (let ib = 0; ib < 8; ib++) {
    const d = load<f32>(scales + (<usize>ib << 2))
    if (abs<f32>(d) > amaxScale) {
      amaxScale = abs<f32>(d)
      maxScale = d
    }
  }
  const d: f32 = -maxScale / 32
  store<u16>(y, <u16>f32ToF16(d))
  const id: f32 = d != 0 ? 1 / d : 0
  let scalesH: u32 = 0
  store<u32>(y, 0, 4)
  for (let ib = 0; ib < 8; ib++) {
    const l = max<i32>(-32, min<i32>(31, nearestInt(id * load<f32>(scales + (<usize>ib << 2)))))
    const dl = d * <f32>l
    packGroup(x + (<usize>ib << 7), dl != 0 ? 1 / dl : 0, y + 8 + (<usize>ib << 4), scratch + TABLE)
    const stored = <u32>(l + 32)
    const sl = y + 4 + <usize>(ib >> 1)
    store<u8>(sl, load<u8>(sl) | <u8>((stored & 0xf) << (4 * (<u32>ib & 1))))
    scalesH |= (stored >> 4) << (2 * <u32>ib)
  }
  store<u16>(y, <u16>scalesH, 2)
}

/** IQ4_NL, 18-byte blocks of 32: f16 d, qs[16]. */
export function quantize_iq4_nl(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  fillTable(scratch)
  for (let b = 0; b < nblocks; b += 4) fourNL(src, dst, b, min<i32>(4, nblocks - b), 0, 1, scratch)
}

/** IQ4_XS, 136-byte blocks of 256: f16 d, u16 scales_h, scales_l[4], qs[128]. */
export function quantize_iq4_xs(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  fillTable(scratch)
  for (let b = 0; b < nblocks; b++) blockXS(src + (<usize>b << 10), dst + <usize>b * 136, 0, scratch)
}

/**
 * With an importance matrix: rows × cols f32 at src (cols a whole number of blocks), qw = f32[cols]
 * per-column importances, scratch QUANT_SCRATCH_BYTES. Twin: quantizeRowsWeighted. The blocks are
 * fitted four at a time in row-major order, so a group of four may span two rows.
 */
export function quantize_iq4_nl_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  fillTable(scratch)
  const perRow = cols >> 5
  const total = rows * perRow
  for (let b = 0; b < total; b += 4) fourNL(src, dst, b, min<i32>(4, total - b), qw, perRow, scratch)
}

export function quantize_iq4_xs_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  fillTable(scratch)
  const perRow = cols >> 8
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < perRow; b++) {
      const block = r * perRow + b
      blockXS(src + (<usize>block << 10), dst + <usize>block * 136, qw + (<usize>b << 10), scratch)
    }
  }
}
