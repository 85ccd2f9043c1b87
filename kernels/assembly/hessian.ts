// The calibration Hessian H += xᵀx (GPTQ, SparseGPT), on the upper triangle, in f32 register tiles per chunk
// of tokens and f64 across chunks. Twin: kernels/reference/hessian.ts (bit-exact). The tiles walk H as
// linalg.ts's rank-k update does (blocks of COL_BLOCK columns, 4×4 tiles, diagonal tiles stored on their
// upper half).

import { at, COL_BLOCK, DIAG_UPPER, FULL } from './linalg'

const HESS_TOKENS: i32 = 256


/** Tokens per chunk of the Hessian: each element sums a chunk in f32, then adds that sum to H in f64. */
export function hessian_chunk_tokens(): i32 {
  return HESS_TOKENS
}

/**
 * The Hessian's register tile, rows r0 … r0+3 × columns c … c+3 of one chunk of `count` tokens: per element
 * s = Σ_t f32(x[t][r]·x[t][c]) summed in f32 with t increasing, then C[r][c] += s in f64. m is &x[t0][r0],
 * v is &x[t0][c]; the SIMD lanes run over columns, never over the terms of one sum.
 */
function hessTile(m: usize, v: usize, ldX: usize, count: i32, C: usize, ldC: usize, shape: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  for (let k = 0; k < count; k++) {
    const b = v128.load(v)
    a0 = f32x4.add(a0, f32x4.mul(f32x4.splat(load<f32>(m)), b))
    a1 = f32x4.add(a1, f32x4.mul(f32x4.splat(load<f32>(m, 4)), b))
    a2 = f32x4.add(a2, f32x4.mul(f32x4.splat(load<f32>(m, 8)), b))
    a3 = f32x4.add(a3, f32x4.mul(f32x4.splat(load<f32>(m, 12)), b))
    m += ldX
    v += ldX
  }
  addTileRow(C, a0, 0, shape)
  addTileRow(C + ldC, a1, 1, shape)
  addTileRow(C + 2 * ldC, a2, 2, shape)
  addTileRow(C + 3 * ldC, a3, 3, shape)
}

/**
 * hessTile for columns c … c+7 at once (two full tiles side by side): each element's sum is the same
 * sequence, but every x[t][r] loaded and splat serves eight columns instead of four.
 */
function hessTile8(m: usize, v: usize, ldX: usize, count: i32, C: usize, ldC: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0)
  for (let k = 0; k < count; k++) {
    const b = v128.load(v), c = v128.load(v, 16)
    let s = f32x4.splat(load<f32>(m))
    a0 = f32x4.add(a0, f32x4.mul(s, b)); e0 = f32x4.add(e0, f32x4.mul(s, c))
    s = f32x4.splat(load<f32>(m, 4))
    a1 = f32x4.add(a1, f32x4.mul(s, b)); e1 = f32x4.add(e1, f32x4.mul(s, c))
    s = f32x4.splat(load<f32>(m, 8))
    a2 = f32x4.add(a2, f32x4.mul(s, b)); e2 = f32x4.add(e2, f32x4.mul(s, c))
    s = f32x4.splat(load<f32>(m, 12))
    a3 = f32x4.add(a3, f32x4.mul(s, b)); e3 = f32x4.add(e3, f32x4.mul(s, c))
    m += ldX
    v += ldX
  }
  addTileRow(C, a0, 0, FULL); addTileRow(C + 32, e0, 0, FULL)
  addTileRow(C + ldC, a1, 1, FULL); addTileRow(C + ldC + 32, e1, 1, FULL)
  addTileRow(C + 2 * ldC, a2, 2, FULL); addTileRow(C + 2 * ldC + 32, e2, 2, FULL)
  addTileRow(C + 3 * ldC, a3, 3, FULL); addTileRow(C + 3 * ldC + 32, e3, 3, FULL)
}

/** C[0 … 3] += the four f32 sums of a (columns ≥ q only, on a diagonal tile). */
// @ts-ignore: decorator
@inline function addTileRow(C: usize, a: v128, q: i32, shape: i32): void {
  if (shape == FULL) {
    v128.store(C, f64x2.add(v128.load(C), f64x2.promote_low_f32x4(a)))
    v128.store(C, f64x2.add(v128.load(C, 16), f64x2.promote_low_f32x4(i32x4.shuffle(a, a, 2, 3, 2, 3))), 16)
  } else {
    if (q <= 0) store<f64>(C, load<f64>(C) + <f64>f32x4.extract_lane(a, 0))
    if (q <= 1) store<f64>(C, load<f64>(C, 8) + <f64>f32x4.extract_lane(a, 1), 8)
    if (q <= 2) store<f64>(C, load<f64>(C, 16) + <f64>f32x4.extract_lane(a, 2), 16)
    store<f64>(C, load<f64>(C, 24) + <f64>f32x4.extract_lane(a, 3), 24)
  }
}

/** One element of the Hessian's chunk update, for the edges that do not fill a tile (hessTile's order). */
function hessElement(x: usize, ldX: usize, t0: i32, t1: i32, H: usize, ldH: usize, r: i32, c: i32): void {
  let s: f32 = 0
  let row = x + <usize>t0 * ldX
  const mOff = <usize>r << 2, vOff = <usize>c << 2
  for (let t = t0; t < t1; t++, row += ldX) s = s + load<f32>(row + mOff) * load<f32>(row + vOff)
  const dst = at(H, ldH, r, c)
  store<f64>(dst, load<f64>(dst) + <f64>s)
}

/** One chunk [t0, t1) on the upper triangle: rows [rowStart, rowEnd), columns [row, K) (rankUpdateUpper's walk). */
function hessChunkUpper(x: usize, ldX: usize, t0: i32, t1: i32, H: usize, ldH: usize, rowStart: i32, rowEnd: i32, K: i32): void {
  const rowEnd4 = rowStart + ((rowEnd - rowStart) & ~3)
  const base = x + <usize>t0 * ldX
  const count = t1 - t0
  for (let cb0 = rowStart; cb0 < K; cb0 += COL_BLOCK) {
    const cb1 = min(K, cb0 + COL_BLOCK)
    for (let r0 = rowStart; r0 < rowEnd4 && r0 < cb1; r0 += 4) {
      const m = base + (<usize>r0 << 2)
      let c = cb0
      if (r0 >= cb0) {
        hessTile(m, base + (<usize>r0 << 2), ldX, count, at(H, ldH, r0, r0), ldH, DIAG_UPPER)
        c = r0 + 4
      }
      for (; c + 8 <= cb1; c += 8) hessTile8(m, base + (<usize>c << 2), ldX, count, at(H, ldH, r0, c), ldH)
      for (; c + 4 <= cb1; c += 4) hessTile(m, base + (<usize>c << 2), ldX, count, at(H, ldH, r0, c), ldH, FULL)
      for (; c < cb1; c++) {
        for (let q = 0; q < 4; q++) hessElement(x, ldX, t0, t1, H, ldH, r0 + q, c)
      }
    }
    for (let r = rowEnd4; r < rowEnd; r++) {
      for (let c = max(cb0, r); c < cb1; c++) hessElement(x, ldX, t0, t1, H, ldH, r, c)
    }
  }
}

/**
 * H[i][j] += Σ_t x[t][i]·x[t][j] for rows i ∈ [i0, i1) and j ≥ i (upper triangle only; the rest of H is
 * neither read into results nor written). x: f32[M, K]; H: f64[K, K]. ACCUMULATES. The tokens go in chunks
 * of hessian_chunk_tokens() from t = 0: within a chunk each element sums f32(x[t][i]·x[t][j]) in f32 (as
 * GPTQ's reference accumulates its whole Hessian), and the chunk's sum is added to H in f64, so long
 * calibrations do not lose precision. Workers may run disjoint row ranges of one H at once; ranges whose
 * length is a multiple of 4 keep to the fast tiles.
 */
export function hessian_accumulate(x: usize, H: usize, M: i32, K: i32, i0: i32, i1: i32): void {
  if (M <= 0 || K <= 0 || i0 < 0 || i1 > K || i0 >= i1) return
  const ldX = <usize>K << 2, ldH = <usize>K << 3
  for (let t0 = 0; t0 < M; t0 += HESS_TOKENS) {
    hessChunkUpper(x, ldX, t0, min(M, t0 + HESS_TOKENS), H, ldH, i0, i1, K)
  }
}
