// f32 -> the non-linear 4-bit types IQ4_NL and IQ4_XS, byte-exact with llama.cpp (ggml 0.10.1)
// quantize_iq4_nl / quantize_iq4_xs, with or without an importance matrix (quantize_row_iq4_nl_impl, ntry = 7).
// Twin: kernels/reference/ggml-quantize-iq.ts. Scalar f32 in the twin's order; the grid search is a
// branchy binary search whose tie rule compares two rounded f32 differences, as C does.
//
// quantize_iq4_xs takes a `scratch` pointer (QUANT_SCRATCH_BYTES, any alignment) for its eight f32 scales;
// the *_imatrix kernels quantize whole rows with llama-quantize's importance weights (quant_weights).

import { f32ToF16, nearestInt } from './ggml-quantize'

const GROUP_MAX_EPS: f32 = 1e-15

// llama.cpp's kvalues_iq4nl (twin: IQ4_VALUES) as static read-only data: laid out at compile time, never written.
const GRID: usize = memory.data<i8>([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113])

/** best_index_int8(16, grid, x): nearest grid index, the upper one on a tie; NaN gives 15. */
// @ts-ignore: decorator
@inline function bestIndex(x: f32): i32 {
  if (x <= <f32>-127) return 0
  if (x >= <f32>113) return 15
  let lo = 0
  let hi = 15
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (x < <f32>load<i8>(GRID + <usize>mid)) hi = mid
    else lo = mid
  }
  return x - <f32>load<i8>(GRID + <usize>(hi - 1)) < <f32>load<i8>(GRID + <usize>hi) - x ? hi - 1 : hi
}

/**
 * One 32-element group's fitted scale (grids max / 127 and (itry − 127) / max, itry = −7..7), with
 * weights x², or the f32[32] at `weights` when it is not 0 (an importance matrix's).
 */
function fitGroup(x: usize, weights: usize): f32 {
  let amax: f32 = 0
  let top: f32 = 0
  for (let j = 0; j < 32; j++) {
    const v = load<f32>(x + (<usize>j << 2))
    if (abs<f32>(v) > amax) {
      amax = abs<f32>(v)
      top = v
    }
  }
  if (amax < GROUP_MAX_EPS) return 0
  let id: f32 = 1 / (-top / <f32>-127)
  let sumqx: f32 = 0
  let sumq2: f32 = 0
  for (let j = 0; j < 32; j++) {
    const v = load<f32>(x + (<usize>j << 2))
    const q = <f32>load<i8>(GRID + <usize>bestIndex(id * v))
    const w = weights != 0 ? load<f32>(weights + (<usize>j << 2)) : v * v
    sumqx += w * q * v
    sumq2 += w * q * q
  }
  let d: f32 = sumq2 > 0 ? sumqx / sumq2 : 0
  let best = d * sumqx
  for (let itry = -7; itry <= 7; itry++) {
    id = <f32>(itry - 127) / top
    sumqx = 0
    sumq2 = 0
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(x + (<usize>j << 2))
      const q = <f32>load<i8>(GRID + <usize>bestIndex(id * v))
      const w = weights != 0 ? load<f32>(weights + (<usize>j << 2)) : v * v
      sumqx += w * q * v
      sumq2 += w * q * q
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2
      best = d * sumqx
    }
  }
  return d
}

/** 16 bytes at qs: grid indices of x[j] · inv (low nibble) and x[j + 16] · inv (high nibble). */
// @ts-ignore: decorator
@inline function packGroup(x: usize, inv: f32, qs: usize): void {
  for (let j = 0; j < 16; j++) {
    const low = bestIndex(inv * load<f32>(x + (<usize>j << 2)))
    const high = bestIndex(inv * load<f32>(x + (<usize>(j + 16) << 2)))
    store<u8>(qs + <usize>j, <u8>(low | (high << 4)))
  }
}

/**
 * With an importance matrix, the weights qw · sqrt(σ² + x²) of sub-block ib of the `size`-element
 * super-block at x (σ² = 2 · its mean square) to f32[32] at `out`; returns out, or 0 when qw is 0.
 */
function weightsFor(x: usize, qw: usize, size: i32, ib: i32, out: usize): usize {
  if (qw == 0) return 0
  let sigma2: f32 = 0
  for (let j = 0; j < size; j++) {
    const v = load<f32>(x + (<usize>j << 2))
    sigma2 += v * v
  }
  sigma2 *= <f32>2 / <f32>size
  for (let j = 0; j < 32; j++) {
    const e = <usize>((ib << 5) + j) << 2
    const v = load<f32>(x + e)
    store<f32>(out + (<usize>j << 2), load<f32>(qw + e) * sqrt<f32>(sigma2 + v * v))
  }
  return out
}

/** One IQ4_NL block of 32 at x to y (qw: its importances, or 0; scratch: 128 bytes). */
function blockNL(x: usize, y: usize, qw: usize, scratch: usize): void {
  const scale = fitGroup(x, weightsFor(x, qw, 32, 0, scratch))
  store<u16>(y, <u16>f32ToF16(scale))
  packGroup(x, scale != 0 ? 1 / scale : 0, y + 2)
}

/** One IQ4_XS block of 256 at x to y (qw: its importances, or 0; scratch: 160 bytes). */
function blockXS(x: usize, y: usize, qw: usize, scratch: usize): void {
  const scales = scratch + 128
  let maxScale: f32 = 0
  let amaxScale: f32 = 0
  for (let ib = 0; ib < 8; ib++) {
    const d = fitGroup(x + (<usize>ib << 7), weightsFor(x, qw, 256, ib, scratch))
    store<f32>(scales + (<usize>ib << 2), d)
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
    packGroup(x + (<usize>ib << 7), dl != 0 ? 1 / dl : 0, y + 8 + (<usize>ib << 4))
    const stored = <u32>(l + 32)
    const at = y + 4 + <usize>(ib >> 1)
    store<u8>(at, load<u8>(at) | <u8>((stored & 0xf) << (4 * (<u32>ib & 1))))
    scalesH |= (stored >> 4) << (2 * <u32>ib)
  }
  store<u16>(y, <u16>scalesH, 2)
}

/** IQ4_NL, 18-byte blocks of 32: f16 d, qs[16]. */
export function quantize_iq4_nl(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) blockNL(src + (<usize>b << 7), dst + <usize>b * 18, 0, 0)
}

/** IQ4_XS, 136-byte blocks of 256: f16 d, u16 scales_h, scales_l[4], qs[128]. */
export function quantize_iq4_xs(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  for (let b = 0; b < nblocks; b++) blockXS(src + (<usize>b << 10), dst + <usize>b * 136, 0, scratch)
}

/**
 * With an importance matrix: rows × cols f32 at src (cols a whole number of blocks), qw = f32[cols]
 * per-column importances, scratch QUANT_SCRATCH_BYTES. Twin: quantizeRowsWeighted.
 */
export function quantize_iq4_nl_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  const perRow = cols >> 5
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < perRow; b++) {
      const block = r * perRow + b
      blockNL(src + (<usize>block << 7), dst + <usize>block * 18, qw + (<usize>b << 7), scratch)
    }
  }
}

export function quantize_iq4_xs_imatrix(src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): void {
  const perRow = cols >> 8
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < perRow; b++) {
      const block = r * perRow + b
      blockXS(src + (<usize>block << 10), dst + <usize>block * 136, qw + (<usize>b << 10), scratch)
    }
  }
}
