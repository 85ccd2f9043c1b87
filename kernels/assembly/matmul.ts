// y[T, N] = x[T, K] · w[N, K]ᵀ (+ b): every Linear layer of the forward pass, and the LM head.
// This kernel dominates the run time, so it is tiled for register reuse; kernels/reference/matmul.ts
// is its bit-exact twin.
//
// Accumulation order of ONE output y[t, n] (the twin mirrors it; tiling never changes it):
//   K4 = K & ~3; four f32 lane sums a0..a3 start at 0;
//   for k = 0, 4, …, K4 − 4 and lane j: a_j = f32(a_j + f32(x[t, k + j] · w[n, k + j]))
//   s = f32(f32(a0 + a1) + f32(a2 + a3))
//   for k = K4 … K − 1: s = f32(s + f32(x[t, k] · w[n, k]))
//   matmul_nt_bias only: s = f32(s + b[n])
// Plain multiply then add in the default build (kernels.wasm): bit-exact with the twin on every machine.
// The relaxed-SIMD build (kernels-relaxed.wasm, see kernels/build.mjs) compiles the same source with
// ASC_FEATURE_RELAXED_SIMD set, so madd() becomes f32x4.relaxed_madd: a fused multiply-add where the CPU
// has one (one rounding instead of two, so results may differ from the twin in the last bits, and between
// machines), the same mul + add elsewhere. The order of accumulation is the same in both builds.
//
// Blocking: outputs are walked in panels of PANEL_BYTES worth of w rows, so a panel stays in L2
// while every 4-token block of x streams past it; inside a panel, 4 tokens × 2 outputs share their
// loads (6 vector loads feed 8 multiply-adds). Leftover tokens use 1 × 4 tiles (4 independent
// chains keep decode, T = 1, bandwidth-bound rather than latency-bound).
//
// Pointers are byte addresses into the shared memory; no allocation, no global state, so any
// number of workers may run disjoint [n0, n1) ranges of one product at once.

import { transposedSums } from './lane-sums'
import { madd } from './madd'

const PANEL_BYTES: i32 = 256 * 1024

/** Sum of the four lanes, then the scalar tail k ∈ [K4, K), in the documented order. */
// @ts-ignore: decorator
@inline function finishDot(acc: v128, xRow: usize, wRow: usize, K4: i32, K: i32): f32 {
  let s: f32 = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) +
    (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3))
  for (let k = K4; k < K; k++) {
    s += load<f32>(xRow + (<usize>k << 2)) * load<f32>(wRow + (<usize>k << 2))
  }
  return s
}

// @ts-ignore: decorator
@inline function storeOut(y: usize, b: usize, n: i32, s: f32): void {
  // b is the bias address, or usize.MAX_VALUE (where no tensor can start) for none.
  if (b != usize.MAX_VALUE) s += load<f32>(b + (<usize>n << 2))
  store<f32>(y + (<usize>n << 2), s)
}

/**
 * Output n of four tokens, from their lane sums s (lane r: y row r; transposedSums, finishDot's order
 * with no tail, so K = K4), into y rows y0, y0 + rowBytesY, …: the bias added lane by lane as storeOut does.
 */
// @ts-ignore: decorator
@inline function storeColumn(y0: usize, rowBytesY: usize, b: usize, n: i32, s: v128): void {
  if (b != usize.MAX_VALUE) s = f32x4.add(s, v128.load32_splat(b + (<usize>n << 2)))
  const yn = y0 + (<usize>n << 2)
  v128.store32_lane(yn, s, 0)
  v128.store32_lane(yn + rowBytesY, s, 1)
  v128.store32_lane(yn + 2 * rowBytesY, s, 2)
  v128.store32_lane(yn + 3 * rowBytesY, s, 3)
}

/** Four tokens (x rows x0..x3) × two outputs (w rows n, n+1), writing y rows y0..y3. 4×2 beat 4×4,
 *  3×4 and 2×4 in measurements: eight accumulators plus six loaded vectors fit the 16 SIMD registers
 *  V8 gives wasm on x64, where 4×4 spills. */
function tile4x2(
  x0: usize, rowBytesX: usize, w: usize, rowBytesW: usize, y0: usize, rowBytesY: usize,
  b: usize, n: i32, K4: i32, K: i32,
): void {
  const x1 = x0 + rowBytesX, x2 = x1 + rowBytesX, x3 = x2 + rowBytesX
  const w0 = w + <usize>n * rowBytesW, w1 = w0 + rowBytesW
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0)
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0)
  const end = <usize>K4 << 2
  for (let o: usize = 0; o < end; o += 16) {
    const vw0 = v128.load(w0 + o), vw1 = v128.load(w1 + o)
    let vx = v128.load(x0 + o)
    a00 = madd(a00, vx, vw0); a01 = madd(a01, vx, vw1)
    vx = v128.load(x1 + o)
    a10 = madd(a10, vx, vw0); a11 = madd(a11, vx, vw1)
    vx = v128.load(x2 + o)
    a20 = madd(a20, vx, vw0); a21 = madd(a21, vx, vw1)
    vx = v128.load(x3 + o)
    a30 = madd(a30, vx, vw0); a31 = madd(a31, vx, vw1)
  }
  if (K4 == K) {
    storeColumn(y0, rowBytesY, b, n, transposedSums(a00, a10, a20, a30))
    storeColumn(y0, rowBytesY, b, n + 1, transposedSums(a01, a11, a21, a31))
    return
  }
  const y1 = y0 + rowBytesY, y2 = y1 + rowBytesY, y3 = y2 + rowBytesY
  storeOut(y0, b, n, finishDot(a00, x0, w0, K4, K)); storeOut(y0, b, n + 1, finishDot(a01, x0, w1, K4, K))
  storeOut(y1, b, n, finishDot(a10, x1, w0, K4, K)); storeOut(y1, b, n + 1, finishDot(a11, x1, w1, K4, K))
  storeOut(y2, b, n, finishDot(a20, x2, w0, K4, K)); storeOut(y2, b, n + 1, finishDot(a21, x2, w1, K4, K))
  storeOut(y3, b, n, finishDot(a30, x3, w0, K4, K)); storeOut(y3, b, n + 1, finishDot(a31, x3, w1, K4, K))
}

/** One token × four outputs: the tail when T is not a multiple of 4, and the whole of decode (T = 1). */
function tile1x4(x0: usize, w: usize, rowBytesW: usize, y0: usize, b: usize, n: i32, K4: i32, K: i32): void {
  const w0 = w + <usize>n * rowBytesW, w1 = w0 + rowBytesW, w2 = w1 + rowBytesW, w3 = w2 + rowBytesW
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  const end = <usize>K4 << 2
  for (let o: usize = 0; o < end; o += 16) {
    const vx = v128.load(x0 + o)
    a0 = madd(a0, vx, v128.load(w0 + o))
    a1 = madd(a1, vx, v128.load(w1 + o))
    a2 = madd(a2, vx, v128.load(w2 + o))
    a3 = madd(a3, vx, v128.load(w3 + o))
  }
  if (K4 == K) {
    // Outputs n…n + 3 of one row sit side by side: one vector, one store.
    let s = transposedSums(a0, a1, a2, a3)
    if (b != usize.MAX_VALUE) s = f32x4.add(s, v128.load(b + (<usize>n << 2)))
    v128.store(y0 + (<usize>n << 2), s)
    return
  }
  storeOut(y0, b, n, finishDot(a0, x0, w0, K4, K)); storeOut(y0, b, n + 1, finishDot(a1, x0, w1, K4, K))
  storeOut(y0, b, n + 2, finishDot(a2, x0, w2, K4, K)); storeOut(y0, b, n + 3, finishDot(a3, x0, w3, K4, K))
}

/** Four tokens × one output: the tail when the output range is not a multiple of 4. */
function tile4x1(
  x0: usize, rowBytesX: usize, w: usize, rowBytesW: usize, y0: usize, rowBytesY: usize,
  b: usize, n: i32, K4: i32, K: i32,
): void {
  const x1 = x0 + rowBytesX, x2 = x1 + rowBytesX, x3 = x2 + rowBytesX
  const w0 = w + <usize>n * rowBytesW
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  const end = <usize>K4 << 2
  for (let o: usize = 0; o < end; o += 16) {
    const vw = v128.load(w0 + o)
    a0 = madd(a0, v128.load(x0 + o), vw)
    a1 = madd(a1, v128.load(x1 + o), vw)
    a2 = madd(a2, v128.load(x2 + o), vw)
    a3 = madd(a3, v128.load(x3 + o), vw)
  }
  if (K4 == K) {
    storeColumn(y0, rowBytesY, b, n, transposedSums(a0, a1, a2, a3))
    return
  }
  const y1 = y0 + rowBytesY, y2 = y1 + rowBytesY, y3 = y2 + rowBytesY
  storeOut(y0, b, n, finishDot(a0, x0, w0, K4, K)); storeOut(y1, b, n, finishDot(a1, x1, w0, K4, K))
  storeOut(y2, b, n, finishDot(a2, x2, w0, K4, K)); storeOut(y3, b, n, finishDot(a3, x3, w0, K4, K))
}

function tile1x1(x0: usize, w: usize, rowBytesW: usize, y0: usize, b: usize, n: i32, K4: i32, K: i32): void {
  const w0 = w + <usize>n * rowBytesW
  let a = f32x4.splat(0)
  const end = <usize>K4 << 2
  for (let o: usize = 0; o < end; o += 16) {
    a = madd(a, v128.load(x0 + o), v128.load(w0 + o))
  }
  storeOut(y0, b, n, finishDot(a, x0, w0, K4, K))
}

function matmulRange(x: usize, w: usize, b: usize, y: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (T <= 0 || K < 0 || n0 < 0 || n1 > N || n0 >= n1) return
  const K4 = K & ~3
  const rowBytesX = <usize>K << 2, rowBytesW = <usize>K << 2, rowBytesY = <usize>N << 2
  let panel = K > 0 ? (PANEL_BYTES / (K << 2)) & ~3 : 64
  if (panel < 4) panel = 4
  const T4 = T & ~3
  for (let p0 = n0; p0 < n1; p0 += panel) {
    const p1 = min(n1, p0 + panel)
    const p2 = p0 + ((p1 - p0) & ~1)
    const p4 = p0 + ((p1 - p0) & ~3)
    for (let t = 0; t < T4; t += 4) {
      const xt = x + <usize>t * rowBytesX, yt = y + <usize>t * rowBytesY
      for (let n = p0; n < p2; n += 2) tile4x2(xt, rowBytesX, w, rowBytesW, yt, rowBytesY, b, n, K4, K)
      if (p2 < p1) tile4x1(xt, rowBytesX, w, rowBytesW, yt, rowBytesY, b, p2, K4, K)
    }
    for (let t = T4; t < T; t++) {
      const xt = x + <usize>t * rowBytesX, yt = y + <usize>t * rowBytesY
      for (let n = p0; n < p4; n += 4) tile1x4(xt, w, rowBytesW, yt, b, n, K4, K)
      for (let n = p4; n < p1; n++) tile1x1(xt, w, rowBytesW, yt, b, n, K4, K)
    }
  }
}

/** y[t·N + n] = Σ_k x[t·K + k] · w[n·K + k] for t ∈ [0, T), n ∈ [n0, n1). */
export function matmul_nt(x: usize, w: usize, y: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRange(x, w, usize.MAX_VALUE, y, T, K, N, n0, n1)
}

/** As matmul_nt, plus b[n] added last. */
export function matmul_nt_bias(x: usize, w: usize, b: usize, y: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRange(x, w, b, y, T, K, N, n0, n1)
}
