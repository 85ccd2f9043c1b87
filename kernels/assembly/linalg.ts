// f64 dense linear algebra for GPTQ and SparseGPT: the Cholesky factor and the inverse of a lower-triangular
// matrix (the calibration Hessian is ./hessian.ts, on this file's tiling). Twin:
// kernels/reference/linalg.ts.
//
// Bit-exactness. Every output element has ONE fixed sequence of operations (below), each a plain f64
// multiply followed by a plain add, subtract or divide (no fused multiply-add). The SIMD lanes run over
// neighbouring *elements*, never over the terms of one sum, so no sum is ever split into lanes and the
// cache blocking only reorders work on independent elements. The twin is the plain loop nest.
//   cholesky R = Lᵀ (R[j][i], j ≤ i): s = A[j][i] (upper triangle);
//            for k = 0 … j−1: s = s − R[k][j]·R[k][i];  then R[j][j] = √s, or R[j][i] = s / R[j][j]
//   invert   X = L⁻¹ (X[i][j], j < i): s = 0; for k = j … i−1: s = s − L[i][k]·X[k][j];
//            X[i][j] = s / L[i][i];  X[i][i] = 1 / L[i][i]
// These are the sequences of src-main/engine/compress/linalg/cholesky.ts, so that file agrees bit for bit.
// "s − a·b" is computed as "s + (−a)·b" where convenient: IEEE defines x − y as x + (−y) and negation is
// exact, so the bits are the same.
//
// Loop orders (all row-major, n×n, byte addresses, nothing allocated):
// - The symmetric rank-k update C[r][c] += Σ_k (±D[k][r])·D[k][c] (Cholesky's trailing update) runs on 4×4 register tiles: per k one row of D gives the 4 multipliers and the 4 columns, so
//   8 f64x2 accumulators stay in registers for a whole block of k. Columns are walked in blocks of
//   COL_BLOCK so the D block stays in L2 while the row tiles pass.
// - Cholesky is right-looking in panels of PANEL rows of R, working in the upper triangle where each
//   row update is a contiguous axpy; the factor is transposed into the lower triangle at the end.
// - The inverse is right-looking in panels of PANEL rows; below the panel, a 4×4-tiled product.

export const COL_BLOCK: i32 = 256
const PANEL: i32 = 64 // rows per panel of the Cholesky factor and of the triangular inverse
const TRANSPOSE_BLOCK: i32 = 32

// Store masks of a 4×4 tile.
export const FULL: i32 = 0
export const DIAG_UPPER: i32 = 1 // the tile sits on the diagonal; store only column ≥ row

// @ts-ignore: decorator
@inline export function at(base: usize, ld: usize, r: i32, c: i32): usize {
  return base + <usize>r * ld + (<usize>c << 3)
}

/** Two consecutive elements of T as an f64x2 (f32 is promoted exactly). */
// @ts-ignore: decorator
@inline function pairAt<T>(p: usize): v128 {
  if (sizeof<T>() == 4) return f64x2.promote_low_f32x4(v128.load64_zero(p))
  return v128.load(p)
}

// @ts-ignore: decorator
@inline function scalarAt<T>(p: usize): f64 {
  return <f64>load<T>(p)
}

/** dst[q] = dst[q] + a·src[q] for q < count. */
function axpy(dst: usize, src: usize, a: f64, count: i32): void {
  const va = f64x2.splat(a)
  const end2 = <usize>(count & ~1) << 3
  for (let o: usize = 0; o < end2; o += 16) {
    v128.store(dst + o, f64x2.add(v128.load(dst + o), f64x2.mul(va, v128.load(src + o))))
  }
  if (count & 1) {
    const o = end2
    store<f64>(dst + o, load<f64>(dst + o) + a * load<f64>(src + o))
  }
}

/** dst[q] = dst[q] / d. */
function divideRow(dst: usize, d: f64, count: i32): void {
  const vd = f64x2.splat(d)
  const end2 = <usize>(count & ~1) << 3
  for (let o: usize = 0; o < end2; o += 16) v128.store(dst + o, f64x2.div(v128.load(dst + o), vd))
  if (count & 1) store<f64>(dst + end2, load<f64>(dst + end2) / d)
}

// ---- symmetric rank-k update: C[r][c] += Σ_{k ∈ [k0, k1)} (sign·D[k][r]) · D[k][c], k increasing ----

/**
 * The one register tile: C[q][0 … 3] += Σ_{k < count} (sign·m[q·mRow + k·mStep]) · v[k·ldV + 0 … 3] for
 * q < 4, k increasing; C is f64 with row stride ldC, m and v hold elements of type T (f32 or f64).
 * Kept out of line (it has several callers), so V8 tiers it up early in a long first call.
 */
function tile4x4<T>(m: usize, mRow: usize, mStep: usize, v: usize, ldV: usize, count: i32, sign: f64, C: usize, ldC: usize, shape: i32): void {
  const eb = <usize>sizeof<T>()
  const p0 = C, p1 = p0 + ldC, p2 = p1 + ldC, p3 = p2 + ldC
  let a00 = v128.load(p0), a01 = v128.load(p0, 16), a10 = v128.load(p1), a11 = v128.load(p1, 16)
  let a20 = v128.load(p2), a21 = v128.load(p2, 16), a30 = v128.load(p3), a31 = v128.load(p3, 16)
  let m0 = m, m1 = m + mRow, m2 = m1 + mRow, m3 = m2 + mRow
  for (let k = 0; k < count; k++) {
    const b0 = pairAt<T>(v), b1 = pairAt<T>(v + 2 * eb)
    let a = f64x2.splat(sign * scalarAt<T>(m0))
    a00 = f64x2.add(a00, f64x2.mul(a, b0)); a01 = f64x2.add(a01, f64x2.mul(a, b1))
    a = f64x2.splat(sign * scalarAt<T>(m1))
    a10 = f64x2.add(a10, f64x2.mul(a, b0)); a11 = f64x2.add(a11, f64x2.mul(a, b1))
    a = f64x2.splat(sign * scalarAt<T>(m2))
    a20 = f64x2.add(a20, f64x2.mul(a, b0)); a21 = f64x2.add(a21, f64x2.mul(a, b1))
    a = f64x2.splat(sign * scalarAt<T>(m3))
    a30 = f64x2.add(a30, f64x2.mul(a, b0)); a31 = f64x2.add(a31, f64x2.mul(a, b1))
    m0 += mStep; m1 += mStep; m2 += mStep; m3 += mStep; v += ldV
  }
  storeTile(p0, p1, p2, p3, a00, a01, a10, a11, a20, a21, a30, a31, shape)
}

/** Rows r0 … r0+3 × columns c … c+3 of the rank-k update: multipliers and columns both from row k of D. */
// @ts-ignore: decorator
@inline function rankTile<T>(D: usize, ldD: usize, k0: i32, k1: i32, sign: f64, C: usize, ldC: usize, r0: i32, c: i32, shape: i32): void {
  const eb = <usize>sizeof<T>()
  const row = D + <usize>k0 * ldD
  tile4x4<T>(row + <usize>r0 * eb, eb, ldD, row + <usize>c * eb, ldD, k1 - k0, sign, at(C, ldC, r0, c), ldC, shape)
}

/** Writes a 4×4 tile of accumulators; on the diagonal only the triangle that belongs to the output. */
// @ts-ignore: decorator
@inline function storeTile(
  p0: usize, p1: usize, p2: usize, p3: usize,
  a00: v128, a01: v128, a10: v128, a11: v128, a20: v128, a21: v128, a30: v128, a31: v128, shape: i32,
): void {
  if (shape == FULL) {
    v128.store(p0, a00); v128.store(p0, a01, 16); v128.store(p1, a10); v128.store(p1, a11, 16)
    v128.store(p2, a20); v128.store(p2, a21, 16); v128.store(p3, a30); v128.store(p3, a31, 16)
  } else {
    // DIAG_UPPER
    v128.store(p0, a00); v128.store(p0, a01, 16)
    store<f64>(p1 + 8, f64x2.extract_lane(a10, 1)); v128.store(p1, a11, 16)
    v128.store(p2, a21, 16)
    store<f64>(p3 + 24, f64x2.extract_lane(a31, 1))
  }
}

/** One element of the rank-k update, for the edges that do not fill a tile. */
function rankElement<T>(D: usize, ldD: usize, k0: i32, k1: i32, sign: f64, C: usize, ldC: usize, r: i32, c: i32): void {
  const eb = <usize>sizeof<T>()
  const dst = at(C, ldC, r, c)
  const mOff = <usize>r * eb, vOff = <usize>c * eb
  let s = load<f64>(dst)
  let row = D + <usize>k0 * ldD
  for (let k = k0; k < k1; k++, row += ldD) s = s + (sign * scalarAt<T>(row + mOff)) * scalarAt<T>(row + vOff)
  store<f64>(dst, s)
}

/** The update on the upper triangle: rows [rowStart, rowEnd), columns [row, colEnd). rowEnd ≤ colEnd. */
function rankUpdateUpper<T>(D: usize, ldD: usize, k0: i32, k1: i32, sign: f64, C: usize, ldC: usize, rowStart: i32, rowEnd: i32, colEnd: i32): void {
  if (k0 >= k1) return
  const rowEnd4 = rowStart + ((rowEnd - rowStart) & ~3)
  // Blocks start at rowStart so that their edges fall on tile edges (tiles start at row + 4).
  for (let cb0 = rowStart; cb0 < colEnd; cb0 += COL_BLOCK) {
    const cb1 = min(colEnd, cb0 + COL_BLOCK)
    for (let r0 = rowStart; r0 < rowEnd4 && r0 < cb1; r0 += 4) {
      let c = cb0
      if (r0 >= cb0) {
        rankTile<T>(D, ldD, k0, k1, sign, C, ldC, r0, r0, DIAG_UPPER)
        c = r0 + 4
      }
      for (; c + 4 <= cb1; c += 4) rankTile<T>(D, ldD, k0, k1, sign, C, ldC, r0, c, FULL)
      for (; c < cb1; c++) {
        for (let q = 0; q < 4; q++) rankElement<T>(D, ldD, k0, k1, sign, C, ldC, r0 + q, c)
      }
    }
    for (let r = rowEnd4; r < rowEnd; r++) {
      for (let c = max(cb0, r); c < cb1; c++) rankElement<T>(D, ldD, k0, k1, sign, C, ldC, r, c)
    }
  }
}

// ---- Cholesky ----

/**
 * In place: symmetric A (n×n; only its upper triangle, diagonal included, is read) → its lower Cholesky
 * factor L, with the upper triangle zeroed. Returns 0, or j + 1 when the pivot of column j is not
 * positive (or NaN); A's contents are then unspecified.
 */
export function cholesky_lower(A: usize, n: i32): i32 {
  if (n <= 0) return 0
  for (let p0 = 0; p0 < n; p0 += PANEL) {
    const failed = cholesky_panel(A, n, p0)
    if (failed != 0) return failed
    cholesky_trailing(A, n, p0, p0 + PANEL, n)
  }
  mirror(A, n, true)
  return 0
}

// The steps of cholesky_lower, for a host that runs the trailing update across workers: per panel p0
// (multiples of linalg_panel_rows()), cholesky_panel, then cholesky_trailing on disjoint row ranges that
// together cover [p0 + panel, n), then cholesky_finish once. Each element sees the same operations in the
// same order as in cholesky_lower, so the result is the same bits however the rows are split. The panel
// step reads and writes only the panel's own rows and the trailing update only its rows (reading the
// panel's), so the next panel may be factored by whoever updated its rows as soon as they are done.

/** Rows per panel of cholesky_lower and invert_lower, for hosts that split their steps. */
export function linalg_panel_rows(): i32 {
  return PANEL
}

/**
 * Cholesky step 1 for panel [p0, p0 + PANEL): the panel's diagonal block and its rows right of the
 * block. Every earlier panel's trailing update must be in. Returns 0, or j + 1 for a failing pivot j.
 */
export function cholesky_panel(A: usize, n: i32, p0: i32): i32 {
  if (n <= 0 || p0 < 0 || p0 >= n) return 0
  const ld = <usize>n << 3
  const p1 = min(n, p0 + PANEL)
  // The panel's diagonal block, row by row: row k of R is final once its updates from k' < k are in.
  for (let k = p0; k < p1; k++) {
    const rowK = at(A, ld, k, 0)
    const d = load<f64>(rowK + (<usize>k << 3))
    if (!(d > 0)) return k + 1
    const r = Math.sqrt(d)
    store<f64>(rowK + (<usize>k << 3), r)
    divideRow(rowK + (<usize>(k + 1) << 3), r, p1 - k - 1)
    for (let j = k + 1; j < p1; j++) {
      axpy(at(A, ld, j, j), rowK + (<usize>j << 3), -load<f64>(rowK + (<usize>j << 3)), p1 - j)
    }
  }
  // The panel's rows right of the block, a column chunk at a time so the chunk stays in cache.
  for (let c0 = p1; c0 < n; c0 += COL_BLOCK) {
    const width = min(n, c0 + COL_BLOCK) - c0
    for (let k = p0; k < p1; k++) {
      const rowK = at(A, ld, k, 0)
      divideRow(rowK + (<usize>c0 << 3), load<f64>(rowK + (<usize>k << 3)), width)
      for (let j = k + 1; j < p1; j++) {
        axpy(at(A, ld, j, c0), rowK + (<usize>c0 << 3), -load<f64>(rowK + (<usize>j << 3)), width)
      }
    }
  }
  return 0
}

/**
 * Cholesky step 2 for panel p0, on trailing rows [r0, r1) (inside [p0 + PANEL, n)):
 * A[j][i] −= Σ_{k ∈ panel} R[k][j]·R[k][i] for r0 ≤ j < r1, j ≤ i. Ranges of a multiple of 4 rows keep
 * to the fast tiles.
 */
export function cholesky_trailing(A: usize, n: i32, p0: i32, r0: i32, r1: i32): void {
  const p1 = min(n, p0 + PANEL)
  if (n <= 0 || p0 < 0 || r0 < p1 || r1 > n || r0 >= r1) return
  const ld = <usize>n << 3
  rankUpdateUpper<f64>(A, ld, p0, p1, -1.0, A, ld, r0, r1, n)
}

/** Cholesky step 3: the factor R (upper triangle) → L = Rᵀ, upper triangle zeroed. */
export function cholesky_finish(A: usize, n: i32): void {
  if (n > 0) mirror(A, n, true)
}

/** In place: copies one triangle onto the other. upperToLower: R → Rᵀ and the upper triangle zeroed;
 *  otherwise the lower triangle is copied onto the upper (symmetrising). Blocked for the cache. */
function mirror(A: usize, n: i32, upperToLower: bool): void {
  const ld = <usize>n << 3
  for (let b0 = 0; b0 < n; b0 += TRANSPOSE_BLOCK) {
    const b1 = min(n, b0 + TRANSPOSE_BLOCK)
    for (let c0 = b0; c0 < n; c0 += TRANSPOSE_BLOCK) {
      const c1 = min(n, c0 + TRANSPOSE_BLOCK)
      for (let i = b0; i < b1; i++) {
        for (let j = max(c0, i + 1); j < c1; j++) {
          const upper = at(A, ld, i, j), lower = at(A, ld, j, i)
          if (upperToLower) {
            store<f64>(lower, load<f64>(upper))
            store<f64>(upper, 0.0)
          } else {
            store<f64>(upper, load<f64>(lower))
          }
        }
      }
    }
  }
}

// ---- inverse of a lower-triangular matrix ----

/** Rows i0 … i0+3 × columns j … j+3: C[i][j] += Σ_{k ∈ [k0, k1)} (−A[i][k])·A[k][j], k increasing. */
// @ts-ignore: decorator
@inline function invTile(A: usize, ld: usize, i0: i32, j: i32, k0: i32, k1: i32): void {
  tile4x4<f64>(at(A, ld, i0, k0), ld, 8, at(A, ld, k0, j), ld, k1 - k0, -1.0, at(A, ld, i0, j), ld, FULL)
}

/**
 * Row i's updates from the panel rows k ∈ [p0, min(i, p1)) on the panel's own columns, where element j
 * starts (at k = j) from 0, overwriting L[i][j], which is not needed again.
 */
function invPanelColumns(A: usize, ld: usize, i: i32, p0: i32, kEnd: i32): void {
  const rowI = at(A, ld, i, 0)
  for (let k = p0; k < kEnd; k++) {
    const rowK = at(A, ld, k, 0), kb = <usize>k << 3
    const c = -load<f64>(rowI + kb)
    store<f64>(rowI + kb, 0.0 + c * load<f64>(rowK + kb))
    axpy(rowI + (<usize>p0 << 3), rowK + (<usize>p0 << 3), c, k - p0)
  }
}

/** In place: lower-triangular L (n×n) → L⁻¹. Reads and writes the lower triangle and diagonal only. */
export function invert_lower(L: usize, n: i32): void {
  if (n <= 0) return
  for (let p0 = 0; p0 < n; p0 += PANEL) {
    invert_lower_panel(L, n, p0)
    invert_lower_below(L, n, p0, p0 + PANEL, n)
  }
}

// The steps of invert_lower, split as cholesky_lower's are: per panel p0, invert_lower_panel, then
// invert_lower_below on disjoint row ranges covering [p0 + panel, n). Same bits however the rows are
// split; the panel step touches only the panel's rows, the update below only its own rows.

/** Inverse step 1 for panel [p0, p0 + PANEL): its rows, all columns up to the diagonal. */
export function invert_lower_panel(L: usize, n: i32, p0: i32): void {
  if (n <= 0 || p0 < 0 || p0 >= n) return
  const ld = <usize>n << 3
  const p1 = min(n, p0 + PANEL)
  // Panel rows, columns left of the panel (updates from k < p0 are in): finish them a chunk at a time.
  for (let c0 = 0; c0 < p0; c0 += COL_BLOCK) {
    const width = min(p0, c0 + COL_BLOCK) - c0
    for (let i = p0; i < p1; i++) {
      const dst = at(L, ld, i, c0)
      for (let k = p0; k < i; k++) axpy(dst, at(L, ld, k, c0), -load<f64>(at(L, ld, i, k)), width)
      divideRow(dst, load<f64>(at(L, ld, i, i)), width)
    }
  }
  // Panel rows, the panel's own columns; then the diagonal.
  for (let i = p0; i < p1; i++) {
    invPanelColumns(L, ld, i, p0, i)
    const d = load<f64>(at(L, ld, i, i))
    divideRow(at(L, ld, i, p0), d, i - p0)
    store<f64>(at(L, ld, i, i), 1.0 / d)
  }
}

/** Inverse step 2 for panel p0, on rows [r0, r1) below it: their updates from the panel's rows. */
export function invert_lower_below(L: usize, n: i32, p0: i32, r0: i32, r1: i32): void {
  const p1 = min(n, p0 + PANEL)
  if (n <= 0 || p0 < 0 || r0 < p1 || r1 > n || r0 >= r1) return
  const ld = <usize>n << 3
  // Columns left of the panel first, since they read L[i][p0 … p1) that invPanelColumns then overwrites.
  const rowEnd4 = r0 + ((r1 - r0) & ~3)
  for (let c0 = 0; c0 < p0; c0 += COL_BLOCK) {
    const c1 = min(p0, c0 + COL_BLOCK)
    for (let i0 = r0; i0 < rowEnd4; i0 += 4) {
      for (let j = c0; j < c1; j += 4) invTile(L, ld, i0, j, p0, p1)
    }
    for (let i = rowEnd4; i < r1; i++) {
      for (let k = p0; k < p1; k++) axpy(at(L, ld, i, c0), at(L, ld, k, c0), -load<f64>(at(L, ld, i, k)), c1 - c0)
    }
  }
  for (let i = r0; i < r1; i++) invPanelColumns(L, ld, i, p0, p1)
}

// ---- GPTQ's column loop within one block (f32) ----

/**
 * The OBS column loop of GPTQ on rows [r0, r1) for the columns [c0 + from, c0 + to) of the block that
 * starts at c0 and holds `count` columns, each row on its own min-max grid: per column i (in order), per
 * row, q = scale·(clamp(round_half_even(w / scale) + zero, 0, maxq) − zero) replaces w in W,
 * e = (w − q) / U[i][i] goes to err[r][i], and the rest of the block's row takes the feedback
 * w' = w' − e·U[i][j], i < j < count. (A block whose grids change inside it runs as several calls, one per
 * grid.) All in f32, each operation rounded once (no fused multiply-add), as compress/methods/gptq.ts does
 * it in TS; the SIMD lanes run over columns j, never over the terms of one sum. W: f32[rows, cols]; U:
 * f32[B, B], the block's diagonal block of the inverse factor; err: f32[rows, B]; grids: f32[rows, 2]
 * (scale, zero). zeroMask, unless 0: u8[rows, B], nonzero where a weight an earlier step pruned must
 * stay zero: it is quantized as 0 instead of w (q = 0 on any grid that holds 0), and its error w − q still
 * feeds back. Rows are independent: workers may take disjoint ranges. Twin: gptqBlockRows in
 * kernels/reference/linalg.ts.
 */
export function gptq_block_rows(
  W: usize, cols: i32, c0: i32, count: i32, from: i32, to: i32, U: usize, B: i32, err: usize, grids: usize, maxq: f32,
  r0: i32, r1: i32, zeroMask: usize,
): void {
  if (cols <= 0 || B <= 0 || count <= 0 || count > B || c0 < 0 || c0 + count > cols || r0 < 0 || r0 >= r1) return
  if (from < 0 || to > count || from >= to) return
  const ldW = <usize>cols << 2, ldU = <usize>B << 2
  for (let r = r0; r < r1; r++) {
    const row = W + <usize>r * ldW + (<usize>c0 << 2)
    const errRow = err + <usize>r * ldU
    const scale = load<f32>(grids + (<usize>r << 3))
    const zero = load<f32>(grids + (<usize>r << 3) + 4)
    const maskRow = zeroMask + <usize>r * <usize>B
    for (let i = from; i < to; i++) {
      const uRow = U + <usize>i * ldU
      const w = load<f32>(row + (<usize>i << 2))
      const kept: f32 = zeroMask != 0 && load<u8>(maskRow + <usize>i) != 0 ? 0 : w
      const code = min<f32>(maxq, max<f32>(0, nearest<f32>(kept / scale) + zero))
      const q = scale * (code - zero)
      store<f32>(row + (<usize>i << 2), q)
      const e = (w - q) / load<f32>(uRow + (<usize>i << 2))
      store<f32>(errRow + (<usize>i << 2), e)
      // Feedback into columns i + 1 … count − 1, four lanes at a time (unaligned loads are fine).
      let j = i + 1
      const ve = f32x4.splat(e)
      for (; j + 4 <= count; j += 4) {
        const o = <usize>j << 2
        v128.store(row + o, f32x4.sub(v128.load(row + o), f32x4.mul(ve, v128.load(uRow + o))))
      }
      for (; j < count; j++) {
        const o = <usize>j << 2
        store<f32>(row + o, load<f32>(row + o) - e * load<f32>(uRow + o))
      }
    }
  }
}
