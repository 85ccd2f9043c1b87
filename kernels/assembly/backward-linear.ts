// The two products a Linear's backward needs besides the forward's matmul_nt. Twin:
// kernels/reference/backward-linear.ts (bit-exact).
//
// For y = x · Wᵀ (x [M, K], W [N, K], y [M, N]) and the incoming gradient dY [M, N]:
//   dX = dY · W    → matmul_nn(dY, W, dX, M, N, K, …):  y[t, k] (+)= Σ_n x[t, n] · w[n, k]
//   dW += dYᵀ · X  → matmul_tn_acc(dY, X, dW, M, N, K, …): dw[n, k] += Σ_t dy[t, n] · x[t, k]
// Both are "axpy" forms: one output row is a sum of scaled rows of the second operand, so the SIMD
// lanes run along k and no transpose is ever materialised.
//
// Accumulation order of ONE output (the twin mirrors it; tiling never changes it), all f32:
//   matmul_nn:     s = 0; for n = 0 … N−1: s = f32(s + f32(x[t, n] · w[n, k]));
//                  acc = 0 → y = s;  acc ≠ 0 → y = f32(y + s)
//   matmul_tn_acc: for each chunk c of TN_CHUNK rows t (from t = 0): s = 0;
//                  for t in c: s = f32(s + f32(dy[t, n] · x[t, k])); dw = f32(dw + s)
// The chunking bounds the f32 sum's error growth when M (batch × seqlen tokens) is large: each chunk is
// a short sum, and the chunks are added to the running gradient one at a time.
// No fused multiply-add (see matmul.ts). Workers split matmul_nn by output columns [k0, k1) and
// matmul_tn_acc by output rows [n0, n1), so no two workers write the same element.

const TN_CHUNK: i32 = 256

/** Four rows a (addresses a0 + i·rowStep, each advancing by colStep per r) × 8 columns of b. */
// @ts-ignore: decorator
@inline function axpyTile4x8(
  a0: usize, aRowStep: usize, aColStep: usize, b: usize, bRow: usize, R: i32,
  out: usize, outRow: usize, mode: i32,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0)
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0)
  let pa = a0, pb = b
  for (let r = 0; r < R; r++) {
    const b0 = v128.load(pb), b1 = v128.load(pb, 16)
    let s = f32x4.splat(load<f32>(pa))
    c00 = f32x4.add(c00, f32x4.mul(s, b0)); c01 = f32x4.add(c01, f32x4.mul(s, b1))
    s = f32x4.splat(load<f32>(pa + aRowStep))
    c10 = f32x4.add(c10, f32x4.mul(s, b0)); c11 = f32x4.add(c11, f32x4.mul(s, b1))
    s = f32x4.splat(load<f32>(pa + 2 * aRowStep))
    c20 = f32x4.add(c20, f32x4.mul(s, b0)); c21 = f32x4.add(c21, f32x4.mul(s, b1))
    s = f32x4.splat(load<f32>(pa + 3 * aRowStep))
    c30 = f32x4.add(c30, f32x4.mul(s, b0)); c31 = f32x4.add(c31, f32x4.mul(s, b1))
    pa += aColStep
    pb += bRow
  }
  emit(out, c00, mode); emit(out + 16, c01, mode)
  emit(out + outRow, c10, mode); emit(out + outRow + 16, c11, mode)
  emit(out + 2 * outRow, c20, mode); emit(out + 2 * outRow + 16, c21, mode)
  emit(out + 3 * outRow, c30, mode); emit(out + 3 * outRow + 16, c31, mode)
}

/** mode 0: store; mode 1: add to what is there. */
// @ts-ignore: decorator
@inline function emit(p: usize, v: v128, mode: i32): void {
  v128.store(p, mode == 0 ? v : f32x4.add(v128.load(p), v))
}

/** One row a × 4 columns of b. */
// @ts-ignore: decorator
@inline function axpyTile1x4(a0: usize, aColStep: usize, b: usize, bRow: usize, R: i32, out: usize, mode: i32): void {
  let c = f32x4.splat(0)
  let pa = a0, pb = b
  for (let r = 0; r < R; r++) {
    c = f32x4.add(c, f32x4.mul(f32x4.splat(load<f32>(pa)), v128.load(pb)))
    pa += aColStep
    pb += bRow
  }
  emit(out, c, mode)
}

/** One row a × one column of b. */
// @ts-ignore: decorator
@inline function axpyTile1x1(a0: usize, aColStep: usize, b: usize, bRow: usize, R: i32, out: usize, mode: i32): void {
  let c: f32 = 0
  let pa = a0, pb = b
  for (let r = 0; r < R; r++) {
    c += load<f32>(pa) * load<f32>(pb)
    pa += aColStep
    pb += bRow
  }
  store<f32>(out, mode == 0 ? c : load<f32>(out) + c)
}

/**
 * out[i, k] (mode 0: =, 1: +=) Σ_{r < R} A(i, r) · b[r, k] for rows i ∈ [i0, i1) and columns k ∈ [k0, k1),
 * where A(i, r) is at a + i·aRowStep + r·aColStep (bytes) and b's rows are bRow bytes apart.
 */
function axpyProduct(
  a: usize, aRowStep: usize, aColStep: usize, b: usize, bRow: usize, R: i32,
  out: usize, outRow: usize, i0: i32, i1: i32, k0: i32, k1: i32, mode: i32,
): void {
  const k8 = k0 + ((k1 - k0) & ~7)
  const k4 = k8 + ((k1 - k8) & ~3)
  const i4 = i0 + ((i1 - i0) & ~3)
  // Column strips outermost: a strip of b (R rows × 8 columns) stays in cache while every row of a passes.
  for (let k = k0; k < k8; k += 8) {
    const bk = b + (<usize>k << 2)
    for (let i = i0; i < i4; i += 4) {
      axpyTile4x8(a + <usize>i * aRowStep, aRowStep, aColStep, bk, bRow, R, out + <usize>i * outRow + (<usize>k << 2), outRow, mode)
    }
    for (let i = i4; i < i1; i++) {
      const ai = a + <usize>i * aRowStep, oi = out + <usize>i * outRow + (<usize>k << 2)
      axpyTile1x4(ai, aColStep, bk, bRow, R, oi, mode)
      axpyTile1x4(ai, aColStep, bk + 16, bRow, R, oi + 16, mode)
    }
  }
  for (let k = k8; k < k4; k += 4) {
    for (let i = i0; i < i1; i++) {
      axpyTile1x4(a + <usize>i * aRowStep, aColStep, b + (<usize>k << 2), bRow, R, out + <usize>i * outRow + (<usize>k << 2), mode)
    }
  }
  for (let k = k4; k < k1; k++) {
    for (let i = i0; i < i1; i++) {
      axpyTile1x1(a + <usize>i * aRowStep, aColStep, b + (<usize>k << 2), bRow, R, out + <usize>i * outRow + (<usize>k << 2), mode)
    }
  }
}

/**
 * y[t·K + k] = Σ_n x[t·N + n] · w[n·K + k] for t ∈ [0, T), k ∈ [k0, k1); acc ≠ 0 adds to y instead
 * of writing it. (dX = dY · W for a Linear W [N, K].)
 */
export function matmul_nn(x: usize, w: usize, y: usize, T: i32, N: i32, K: i32, k0: i32, k1: i32, acc: i32): void {
  if (T <= 0 || N < 0 || K <= 0 || k0 < 0 || k1 > K || k0 >= k1) return
  const rowX = <usize>N << 2, rowW = <usize>K << 2
  axpyProduct(x, rowX, 4, w, rowW, N, y, rowW, 0, T, k0, k1, acc != 0 ? 1 : 0)
}

/**
 * ACCUMULATES dw[n·K + k] += Σ_t dy[t·N + n] · x[t·K + k] for n ∈ [n0, n1), k ∈ [0, K), summed in
 * chunks of TN_CHUNK tokens. (dW += dYᵀ · X for a Linear W [N, K].)
 */
export function matmul_tn_acc(dy: usize, x: usize, dw: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  if (M <= 0 || K <= 0 || n0 < 0 || n1 > N || n0 >= n1) return
  const rowDy = <usize>N << 2, rowX = <usize>K << 2
  for (let t0 = 0; t0 < M; t0 += TN_CHUNK) {
    const rows = min(TN_CHUNK, M - t0)
    // A(i = n, r = t) = dy[(t0 + r)·N + n]: rows of A step by 4 bytes, columns by a dy row.
    axpyProduct(dy + <usize>t0 * rowDy, 4, rowDy, x + <usize>t0 * rowX, rowX, rows, dw, rowX, n0, n1, 0, K, 1)
  }
}
