// The steps after a K-quant's fits, shared by the plain (./ggml-quantize, ./ggml-quantize-kquants) and the
// weighted (./ggml-quantize-imatrix) quantizers: each sub-block's final levels, four elements per vector
// (lane-wise, the same division and rounding as the scalar loops of the twins), and the packing of a
// block's 256 levels into its bytes, sixteen bytes at a time.

import { clampI, nearestInt4 } from './ggml-quantize-lanes'

/**
 * The 16 levels clamp(nearestInt(x[i] / d), -nmax, nmax - 1) + nmax of x (f32[16]) as bytes to dst: four
 * at a time, the same division and rounding per lane as the scalar loop (Q3_K, Q6_K).
 */
export function symmetricLevels16(x: usize, d: f32, nmax: i32, dst: usize): void {
  const dv = f32x4.splat(d)
  const offset = i32x4.splat(nmax)
  const l0 = i32x4.add(clampI(nearestInt4(f32x4.div(v128.load(x), dv)), -nmax, nmax - 1), offset)
  const l1 = i32x4.add(clampI(nearestInt4(f32x4.div(v128.load(x, 16), dv)), -nmax, nmax - 1), offset)
  const l2 = i32x4.add(clampI(nearestInt4(f32x4.div(v128.load(x, 32), dv)), -nmax, nmax - 1), offset)
  const l3 = i32x4.add(clampI(nearestInt4(f32x4.div(v128.load(x, 48), dv)), -nmax, nmax - 1), offset)
  v128.store(dst, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(l0, l1), i16x8.narrow_i32x4_s(l2, l3)))
}

/**
 * The n levels clamp(nearestInt((x[i] + dm) / d), 0, nmax) of x as bytes to dst (n a multiple of 16): four
 * at a time, the same addition, division and rounding per lane as the scalar loop (Q2_K, Q4_K, Q5_K).
 */
export function asymmetricLevels(n: i32, x: usize, d: f32, dm: f32, nmax: i32, dst: usize): void {
  const dv = f32x4.splat(d)
  const mv = f32x4.splat(dm)
  for (let i = 0; i < n; i += 16) {
    const p = x + (<usize>i << 2)
    const l0 = clampI(nearestInt4(f32x4.div(f32x4.add(v128.load(p), mv), dv)), 0, nmax)
    const l1 = clampI(nearestInt4(f32x4.div(f32x4.add(v128.load(p, 16), mv), dv)), 0, nmax)
    const l2 = clampI(nearestInt4(f32x4.div(f32x4.add(v128.load(p, 32), mv), dv)), 0, nmax)
    const l3 = clampI(nearestInt4(f32x4.div(f32x4.add(v128.load(p, 48), mv), dv)), 0, nmax)
    v128.store(dst + <usize>i, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(l0, l1), i16x8.narrow_i32x4_s(l2, l3)))
  }
}

/**
 * Q4_K's qs[128] (and Q5_K's qh[32] when `five`) at y + 16 from the 256 levels at L: sub-block j's
 * element i in byte 32·(j / 2) + i, low nibble for even j; Q5_K's fifth bit of it at bit j of qh[i].
 */
export function packQ45K(L: usize, y: usize, five: bool): void {
  const qs = five ? y + 48 : y + 16
  const low = i8x16.splat(0xf)
  let h0 = i8x16.splat(0)
  let h1 = i8x16.splat(0)
  for (let g = 0; g < 4; g++) {
    const e = L + (<usize>g << 6)
    for (let half = 0; half < 2; half++) {
      const a = v128.load(e + (<usize>half << 4))
      const b = v128.load(e + (<usize>half << 4), 32)
      v128.store(qs + (<usize>g << 5) + (<usize>half << 4), v128.or(v128.and(a, low), i8x16.shl(v128.and(b, low), 4)))
      if (five) {
        const bitValue: i32 = 1 << (2 * g) // sub-block 2g's bit; 2g + 1's is the next
        const bitA = i8x16.splat(<i8>bitValue)
        const bitB = i8x16.splat(<i8>(bitValue << 1))
        const bits = v128.or(v128.and(i8x16.gt_u(a, low), bitA), v128.and(i8x16.gt_u(b, low), bitB))
        if (half == 0) h0 = v128.or(h0, bits)
        else h1 = v128.or(h1, bits)
      }
    }
  }
  if (five) {
    v128.store(y + 16, h0)
    v128.store(y + 16, h1, 16)
  }
}

/**
 * Q3_K's hmask[32] at y and qs[64] at y + 32 from the 256 levels (0..7) at L, which lose their high bit:
 * bit c of hmask[i] is level 32c + i's high bit (level > 3), then four 2-bit levels per byte, level
 * 128h + l + 32k at bits 2k of qs[32h + l]. Sixteen bytes at a time.
 */
export function packQ3K(L: usize, y: usize): void {
  let h0 = i8x16.splat(0)
  let h1 = i8x16.splat(0)
  for (let c = 0; c < 8; c++) {
    const p = L + (<usize>c << 5)
    const a = v128.load(p)
    const b = v128.load(p, 16)
    const highA = i8x16.gt_u(a, i8x16.splat(3))
    const highB = i8x16.gt_u(b, i8x16.splat(3))
    const bitValue: i32 = 1 << c
    const bit = i8x16.splat(<i8>bitValue)
    h0 = v128.or(h0, v128.and(highA, bit))
    h1 = v128.or(h1, v128.and(highB, bit))
    v128.store(p, i8x16.sub(a, v128.and(highA, i8x16.splat(4))))
    v128.store(p, i8x16.sub(b, v128.and(highB, i8x16.splat(4))), 16)
  }
  v128.store(y, h0)
  v128.store(y, h1, 16)
  for (let e: usize = 0; e < 256; e += 128) {
    for (let l: usize = 0; l < 32; l += 16) {
      const q = L + e + l
      const v = v128.or(
        v128.or(v128.load(q), i8x16.shl(v128.load(q, 32), 2)),
        v128.or(i8x16.shl(v128.load(q, 64), 4), i8x16.shl(v128.load(q, 96), 6)),
      )
      v128.store(y + 32 + (e >> 2) + l, v)
    }
  }
}

/** Q6_K's ql[128] and qh[64] at y from the 256 levels (0..63) at L (quantize_row_q6_K's packing). */
export function packQ6K(L: usize, y: usize): void {
  const low = i8x16.splat(0xf)
  for (let half: usize = 0; half < 2; half++) {
    const ql = y + 64 * half
    const qh = y + 128 + 32 * half
    const e = L + 128 * half
    for (let l: usize = 0; l < 32; l += 16) {
      const q1 = v128.load(e + l)
      const q2 = v128.load(e + l, 32)
      const q3 = v128.load(e + l, 64)
      const q4 = v128.load(e + l, 96)
      v128.store(ql + l, v128.or(v128.and(q1, low), i8x16.shl(v128.and(q3, low), 4)))
      v128.store(ql + l, v128.or(v128.and(q2, low), i8x16.shl(v128.and(q4, low), 4)), 32)
      const h = v128.or(
        v128.or(i8x16.shr_u(q1, 4), i8x16.shl(i8x16.shr_u(q2, 4), 2)),
        v128.or(i8x16.shl(i8x16.shr_u(q3, 4), 4), i8x16.shl(i8x16.shr_u(q4, 4), 6)),
      )
      v128.store(qh + l, h)
    }
  }
}
