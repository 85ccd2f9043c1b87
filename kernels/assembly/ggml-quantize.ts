// f32 -> GGUF block types Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, byte-exact with llama.cpp's quantize_row_*_ref.
// Twin: kernels/reference/ggml-quantize.ts, which explains the rounding rules (plain f32 operations in
// llama.cpp's order, nearest_int's magic-number rounding, RNE fp16 scales, x86 cast semantics). The
// absmax searches use SIMD where the lane order cannot change the result. The K-quants' scale searches
// run in SIMD lanes, one sub-block per lane (Q4_K, Q5_K: all eight in one fit, ./ggml-quantize-asym; Q6_K:
// four, ./ggml-quantize-lanes), each lane doing the twin's f32 operations in its order (Binaryen does no fast-math, so nothing is fused or reordered); the super-block
// scales stay scalar.
//
// The K-quant kernels take a `scratch` pointer (QUANT_SCRATCH_BYTES of the caller's memory, any alignment;
// the layout is below): the kernels allocate nothing, and static scratch would be shared by every thread.

import { f16ToF32Scalar } from './convert'
import { fitAsym8 } from './ggml-quantize-asym'
import { fitSymmetric4, transpose4 } from './ggml-quantize-lanes'
import { asymmetricLevels, packQ45K, packQ6K, symmetricLevels16 } from './ggml-quantize-levels'

const GROUP_MAX_EPS: f32 = 1e-15
const ONE_TENTH: f32 = 0.1
const ROUNDING_MAGIC: f32 = 12582912.0 // 1.5 * 2^23, see nearestInt

// Scratch layout of the K-quant kernels (byte offsets; 4592 of QUANT_SCRATCH_BYTES used). The per-element
// regions hold eight sub-blocks (two quads of fitAsym8) or four (fitSymmetric4, the first half).
const S_XT = 0 // v128[2][32] sub-blocks' values, transposed (lane k of quad q = sub-block 4q + k)
const S_WT = 1024 // v128[2][32] their weights, transposed
const S_LT = 2048 // v128[2][32] the lanes' trial levels
const S_WORK = 3072 // SYM_WORK_BYTES (1136) of work space for the lane fits, to 4208
const S_L = 4208 // u8[256] the block's levels
const S_SCALES = 4464 // f32[16] the sub-blocks' scales
const S_MINS = 4528 // f32[16] the sub-blocks' mins

/** llama.cpp's nearest_int: round half to even for |x| < 2^22 via the mantissa of x + 1.5 * 2^23; NaN gives 0. */
// @ts-ignore: decorator
@inline export function nearestInt(x: f32): i32 {
  if (x != x) return 0
  return <i32>(reinterpret<u32>(x + ROUNDING_MAGIC) & 0x7fffff) - 0x400000
}

/** C's roundf: halves away from zero. x - trunc(x) is exact in f32. */
// @ts-ignore: decorator
@inline export function roundHalfAway(x: f32): f32 {
  const t = trunc<f32>(x)
  return abs<f32>(x - t) >= 0.5 ? t + copysign<f32>(1, x) : t
}

/** A C float -> int cast as x86-64 does it (cvttss2si): NaN and out-of-range values give INT_MIN. */
// @ts-ignore: decorator
@inline export function castToInt32(x: f32): i32 {
  return x >= -2147483648.0 && x < 2147483648.0 ? <i32>x : i32.MIN_VALUE
}

/** value >> shift (1 <= shift <= 24), rounded to nearest, ties to even. */
// @ts-ignore: decorator
@inline function roundShiftRightEven(value: u32, shift: u32): u32 {
  const kept = value >> shift
  const dropped = value & ((1 << shift) - 1)
  const half: u32 = 1 << (shift - 1)
  return kept + <u32>(dropped > half || (dropped == half && (kept & 1) != 0))
}

/** IEEE binary16 bits of x, round to nearest even; NaN -> sign | 0x7e00 (ggml's encoder). Twin: f32ToF16Bits. */
// @ts-ignore: decorator
@inline export function f32ToF16(x: f32): u32 {
  const bits = reinterpret<u32>(x)
  const sign = (bits >> 16) & 0x8000
  const magnitude = bits & 0x7fffffff
  if (magnitude > 0x7f800000) return sign | 0x7e00
  if (magnitude >= 0x477ff000) return sign | 0x7c00
  const exponent = magnitude >> 23
  if (exponent < 113) {
    const shift = 126 - exponent
    if (shift > 24) return sign
    return sign | roundShiftRightEven((magnitude & 0x7fffff) | 0x800000, shift)
  }
  // Round to nearest even without a branch (the rounding bits are data, so a branch mispredicts about
  // half the time): adding 0xfff plus the kept mantissa's lowest bit carries into bit 13 exactly when
  // the dropped bits exceed half, or equal it with an odd kept part; a carry out of the mantissa
  // raises the exponent, as rounding up should. Same bits as the branching form on all 2^32 inputs
  // (checked exhaustively in C when it was written).
  return sign | ((magnitude - (112 << 23) + 0xfff + ((magnitude >> 13) & 1)) >> 13)
}

/** dst u16[n] = fp16 bits of src f32[n] (round to nearest even). */
export function encode_f16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>f32ToF16(load<f32>(src + (<usize>i << 2))))
}

/**
 * max |x| over 32 f32 at x with C's MAX(amax, |v|) semantics. Without NaN, max is order-free, so lanes
 * may run in parallel (pmax, which returns its first operand on ties; all lanes are >= +0); with a NaN the
 * sequential rule (a NaN replaces amax, the next value replaces a NaN) is replayed in scalar.
 */
// @ts-ignore: decorator
@inline function absmax32(x: usize): f32 {
  let acc = f32x4.splat(0)
  let nan = i32x4.splat(0)
  for (let j = 0; j < 128; j += 16) {
    const v = v128.load(x + <usize>j)
    acc = f32x4.pmax(acc, f32x4.abs(v))
    nan = v128.or(nan, f32x4.ne(v, v))
  }
  if (v128.any_true(nan)) {
    let amax: f32 = 0
    for (let j = 0; j < 32; j++) {
      const a = abs<f32>(load<f32>(x + (<usize>j << 2)))
      amax = amax > a ? amax : a
    }
    return amax
  }
  return max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)))
}

/** The largest of v's four lanes as unsigned integers. */
// @ts-ignore: decorator
@inline function laneMaxU(v: v128): u32 {
  const pairs = i32x4.max_u(v, i32x4.shuffle(v, v, 2, 3, 0, 1))
  return <u32>i32x4.extract_lane(i32x4.max_u(pairs, i32x4.shuffle(pairs, pairs, 1, 0, 3, 2)), 0)
}

/**
 * Q8_0, 34-byte blocks of 32 (f16 d, int8 qs[32]): d = absmax / 127, q = roundf(x * (1 / d)).
 *
 * Blocks of finite values whose amax·id is at most 2^22 (all but blocks of deep subnormals, whose id
 * overflows) take a short path: every rounded x·id is then an integer of at most 2^22 in magnitude, so
 * the cast cannot go out of range, and the code's low byte is read from its sum with 1.5·2^23 (exact
 * there). Other blocks take the scalar-faithful path, quantizeQ8_0Careful.
 */
export function quantize_q8_0(src: usize, dst: usize, nblocks: i32): void {
  const absMask = i32x4.splat(0x7fffffff)
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 34
    // |x|'s bits: an unsigned max finds amax and, above every finite value's bits, any Inf or NaN.
    let top = i32x4.splat(0)
    for (let j = 0; j < 128; j += 16) top = i32x4.max_u(top, v128.and(v128.load(x + <usize>j), absMask))
    const amaxBits = laneMaxU(top)
    if (amaxBits >= 0x7f800000) {
      quantizeQ8_0Careful(x, y)
      continue
    }
    const amax = reinterpret<f32>(amaxBits)
    const d: f32 = amax / 127
    const id: f32 = d != 0 ? 1 / d : 0
    if (!(amax * id <= 4194304)) {
      quantizeQ8_0Careful(x, y)
      continue
    }
    store<u16>(y, <u16>f32ToF16(d))
    storeQ8Codes(x, y, f32x4.splat(id), true)
  }
}

/**
 * Stores block x's 32 codes (x·vid rounded) at y + 2, sixteen per pass, each the low byte of its lane: on
 * the short path from q8ShortCodes4, else from q8Codes4.
 */
// @ts-ignore: decorator
@inline function storeQ8Codes(x: usize, y: usize, vid: v128, short: bool): void {
  for (let j = 0; j < 32; j += 16) {
    const v0 = f32x4.mul(v128.load(x + (<usize>j << 2)), vid)
    const v1 = f32x4.mul(v128.load(x + (<usize>(j + 4) << 2)), vid)
    const v2 = f32x4.mul(v128.load(x + (<usize>(j + 8) << 2)), vid)
    const v3 = f32x4.mul(v128.load(x + (<usize>(j + 12) << 2)), vid)
    const c0 = short ? q8ShortCodes4(v0) : q8Codes4(v0)
    const c1 = short ? q8ShortCodes4(v1) : q8Codes4(v1)
    const c2 = short ? q8ShortCodes4(v2) : q8Codes4(v2)
    const c3 = short ? q8ShortCodes4(v3) : q8Codes4(v3)
    const lo = v128.shuffle<u8>(c0, c1, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0)
    const hi = v128.shuffle<u8>(c2, c3, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0)
    v128.store(y + 2 + <usize>j, v128.shuffle<u8>(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23))
  }
}

/** C's roundf in each lane: trunc, then one step away from zero where the dropped part is at least 0.5. */
// @ts-ignore: decorator
@inline function roundHalfAway4(v: v128): v128 {
  const t = f32x4.trunc(v)
  const away = f32x4.ge(f32x4.abs(f32x4.sub(v, t)), f32x4.splat(0.5))
  const stepped = f32x4.add(t, v128.or(v128.and(v, i32x4.splat(0x80000000)), f32x4.splat(1)))
  return v128.bitselect(stepped, t, away)
}

/** For the short path: 1.5·2^23 + roundHalfAway(v) per lane, whose low byte is the code. */
// @ts-ignore: decorator
@inline function q8ShortCodes4(v: v128): v128 {
  return f32x4.add(roundHalfAway4(v), f32x4.splat(12582912.0))
}

/** One Q8_0 block as the scalar code computes it, for blocks with an Inf or NaN or an overflowing id. */
function quantizeQ8_0Careful(x: usize, y: usize): void {
  const d: f32 = absmax32(x) / 127
  const id: f32 = d != 0 ? 1 / d : 0
  store<u16>(y, <u16>f32ToF16(d))
  storeQ8Codes(x, y, f32x4.splat(id), false)
}

/**
 * castToInt32(roundHalfAway(v)) in each lane, as i32x4: the scalar code's operations exactly, then the
 * cast's INT_MIN for NaN and out-of-range lanes (trunc_sat would give 0 or INT_MAX there; an infinite id
 * from a subnormal d makes such lanes).
 */
// @ts-ignore: decorator
@inline function q8Codes4(v: v128): v128 {
  const r = roundHalfAway4(v)
  const inRange = f32x4.lt(f32x4.abs(r), f32x4.splat(2147483648.0))
  return v128.bitselect(i32x4.trunc_sat_f32x4_s(r), i32x4.splat(i32.MIN_VALUE), inRange)
}

/**
 * Q4_0, 18-byte blocks of 32 (f16 d, qs[16]): d = m / -8 (m: first element of largest magnitude),
 * q = min(15, (i8)(int)(x·id + 8.5)).
 *
 * Most blocks take a short path that gives the same bytes with fewer operations. It applies when every
 * value is finite and amax·|id| ≤ 8.5 (false only for blocks of deep subnormals, whose d = m / -8 is
 * rounded): then every |x·id| ≤ 8.5 (rounding is monotone), so x·id + 8.5 lies in [0, 17] and its
 * truncation needs neither the cast's out-of-range case nor the int8 wrap. Other blocks take the
 * scalar-faithful path, quantizeQ4_0Careful.
 */
export function quantize_q4_0(src: usize, dst: usize, nblocks: i32): void {
  const absMask = i32x4.splat(0x7fffffff)
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 18
    const v0 = v128.load(x), v1 = v128.load(x, 16), v2 = v128.load(x, 32), v3 = v128.load(x, 48)
    const v4 = v128.load(x, 64), v5 = v128.load(x, 80), v6 = v128.load(x, 96), v7 = v128.load(x, 112)
    // |x|'s bits: for finite values their unsigned order is the values' order, and Inf and NaN bits
    // are above every finite one, so one integer max finds amax and whether anything is not finite.
    const a0 = v128.and(v0, absMask), a1 = v128.and(v1, absMask), a2 = v128.and(v2, absMask), a3 = v128.and(v3, absMask)
    const a4 = v128.and(v4, absMask), a5 = v128.and(v5, absMask), a6 = v128.and(v6, absMask), a7 = v128.and(v7, absMask)
    const top = i32x4.max_u(i32x4.max_u(i32x4.max_u(a0, a1), i32x4.max_u(a2, a3)), i32x4.max_u(i32x4.max_u(a4, a5), i32x4.max_u(a6, a7)))
    const amaxBits = laneMaxU(top)
    if (amaxBits >= 0x7f800000) {
      quantizeQ4_0Careful(x, y)
      continue
    }
    // C keeps the first element whose magnitude exceeds everything before it: the first that reaches amax.
    let m: f32 = 0
    if (amaxBits != 0) {
      const want = i32x4.splat(amaxBits)
      const low = i8x16.narrow_i16x8_s(
        i16x8.narrow_i32x4_s(i32x4.eq(a0, want), i32x4.eq(a1, want)),
        i16x8.narrow_i32x4_s(i32x4.eq(a2, want), i32x4.eq(a3, want)),
      )
      const high = i8x16.narrow_i16x8_s(
        i16x8.narrow_i32x4_s(i32x4.eq(a4, want), i32x4.eq(a5, want)),
        i16x8.narrow_i32x4_s(i32x4.eq(a6, want), i32x4.eq(a7, want)),
      )
      const first = ctz<u32>(<u32>i8x16.bitmask(low) | (<u32>i8x16.bitmask(high) << 16))
      m = load<f32>(x + (<usize>first << 2))
    }
    const d: f32 = m / -8
    const id: f32 = d != 0 ? 1 / d : 0
    if (!(reinterpret<f32>(amaxBits) * abs<f32>(id) <= 8.5)) {
      quantizeQ4_0Careful(x, y)
      continue
    }
    store<u16>(y, <u16>f32ToF16(d))
    // Each byte is q[j] + 16·q[j + 16], formed exactly in f32 (integers below 256) and read from the low
    // byte of its sum with 2^23.
    const vid = f32x4.splat(id)
    const p0 = q4PackedByte4(v0, v4, vid)
    const p1 = q4PackedByte4(v1, v5, vid)
    const p2 = q4PackedByte4(v2, v6, vid)
    const p3 = q4PackedByte4(v3, v7, vid)
    const lo = v128.shuffle<u8>(p0, p1, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0)
    const hi = v128.shuffle<u8>(p2, p3, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0)
    v128.store(y + 2, v128.shuffle<u8>(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23))
  }
}

/** For the short path: 2^23 + q(low) + 16·q(high) per lane, q = min(15, trunc(x·id + 8.5)). */
// @ts-ignore: decorator
@inline function q4PackedByte4(low: v128, high: v128, vid: v128): v128 {
  const half = f32x4.splat(8.5)
  const fifteen = f32x4.splat(15)
  const ql = f32x4.pmin(fifteen, f32x4.trunc(f32x4.add(f32x4.mul(low, vid), half)))
  const qh = f32x4.pmin(fifteen, f32x4.trunc(f32x4.add(f32x4.mul(high, vid), half)))
  return f32x4.add(f32x4.add(ql, f32x4.mul(qh, f32x4.splat(16))), f32x4.splat(8388608.0))
}

/** One Q4_0 block as the scalar code computes it, for blocks with an Inf or NaN or a rounded d. */
function quantizeQ4_0Careful(x: usize, y: usize): void {
  // C keeps the first v with amax < |v| strictly; a NaN never passes that test, and pmax ignores it the
  // same way. So: the lane max, then the first element that reaches it (none if it is 0).
  let acc = f32x4.splat(0)
  for (let j = 0; j < 128; j += 16) acc = f32x4.pmax(acc, f32x4.abs(v128.load(x + <usize>j)))
  const amax = max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)))
  let m: f32 = 0
  if (amax > 0) {
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(x + (<usize>j << 2))
      if (abs<f32>(v) == amax) { m = v; break }
    }
  }
  const d: f32 = m / -8
  const id: f32 = d != 0 ? 1 / d : 0
  store<u16>(y, <u16>f32ToF16(d))
  // Four bytes per pass, each lane the scalar min(15, (i8)(int)(x·id + 8.5)) of elements j and j + 16.
  const vid = f32x4.splat(id)
  const b0 = q4Bytes4(x, 0, vid)
  const b1 = q4Bytes4(x, 4, vid)
  const b2 = q4Bytes4(x, 8, vid)
  const b3 = q4Bytes4(x, 12, vid)
  const lo = v128.shuffle<u8>(b0, b1, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0)
  const hi = v128.shuffle<u8>(b2, b3, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0)
  v128.store(y + 2, v128.shuffle<u8>(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23))
}

/** The packed bytes of elements j … j + 3 (low nibbles) and j + 16 … j + 19 (high), one per i32 lane. */
// @ts-ignore: decorator
@inline function q4Bytes4(x: usize, j: i32, vid: v128): v128 {
  const low = q4Codes4(v128.load(x + (<usize>j << 2)), vid)
  const high = q4Codes4(v128.load(x + (<usize>(j + 16) << 2)), vid)
  return v128.or(v128.and(low, i32x4.splat(0xff)), i32x4.shl(high, 4))
}

/** min(15, (i8)castToInt32(v·id + 8.5)) in each lane, as i32x4 (the multiply and add rounded apart, as C does). */
// @ts-ignore: decorator
@inline function q4Codes4(v: v128, vid: v128): v128 {
  const r = f32x4.add(f32x4.mul(v, vid), f32x4.splat(8.5))
  const inRange = v128.and(f32x4.ge(r, f32x4.splat(-2147483648.0)), f32x4.lt(r, f32x4.splat(2147483648.0)))
  const c = v128.bitselect(i32x4.trunc_sat_f32x4_s(r), i32x4.splat(i32.MIN_VALUE), inRange)
  return i32x4.min_s(i32x4.splat(15), i32x4.shr_s(i32x4.shl(c, 24), 24))
}

/** make_qkx2_quants' weights for the Q4_K/Q5_K fits, rms(x) + |x| per lane (wT from the transposed xT). */
function rmsPlusAbsWeights(n: i32, xT: usize, wT: usize): void {
  let sumX2 = f32x4.splat(0)
  for (let i = 0; i < n; i++) {
    const v = v128.load(xT + (<usize>i << 4))
    sumX2 = f32x4.add(sumX2, f32x4.mul(v, v))
  }
  const avX = f32x4.sqrt(f32x4.div(sumX2, f32x4.splat(<f32>n)))
  for (let i = 0; i < n; i++) {
    v128.store(wT + (<usize>i << 4), f32x4.add(avX, f32x4.abs(v128.load(xT + (<usize>i << 4)))))
  }
}

/** Q4_K's 6-bit scale and min of sub-block j from the 12 packed bytes (get_scale_min_k4). */
// @ts-ignore: decorator
@inline function packedScale(p: usize, j: i32): u32 {
  if (j < 4) return <u32>load<u8>(p + <usize>j) & 63
  return (<u32>load<u8>(p + <usize>(j + 4)) & 0xf) | ((<u32>load<u8>(p + <usize>(j - 4)) >> 6) << 4)
}

// @ts-ignore: decorator
@inline function packedMin(p: usize, j: i32): u32 {
  if (j < 4) return <u32>load<u8>(p + <usize>(j + 4)) & 63
  return (<u32>load<u8>(p + <usize>(j + 4)) >> 4) | ((<u32>load<u8>(p + <usize>j) >> 6) << 4)
}

/**
 * Q4_K (144-byte blocks of 256: f16 d, f16 dmin, scales[12], qs[128]) and Q5_K (176 bytes: the same plus
 * qh[32] before qs, holding each level's fifth bit: bit j of qh[i] for element i of sub-block j):
 * quantize_row_q4_K_ref / quantize_row_q5_K_ref. Each sub-block's fit is make_qkx2_quants(32, nmax, x,
 * rms(x) + |x|, rmin, 0.1, nstep, squared error) with (nmax, rmin, nstep) = (15, -1, 20) for Q4_K and
 * (31, -0.5, 15) for Q5_K, the eight sub-blocks in one fit (two quads).
 */
function quantizeK(src: usize, dst: usize, nblocks: i32, nmax: i32, rmin: f32, nstep: i32, blockBytes: i32, s: usize): void {
  const five = nmax == 31
  const L = s + S_L
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * <usize>blockBytes
    const packed = y + 4
    // Sub-blocks 0–3 are quad A, 4–7 quad B; each quad's weights use its own lanes' rms.
    transpose4(32, x, x + 128, x + 256, x + 384, s + S_XT)
    transpose4(32, x + 512, x + 640, x + 768, x + 896, s + S_XT + 512)
    rmsPlusAbsWeights(32, s + S_XT, s + S_WT)
    rmsPlusAbsWeights(32, s + S_XT + 512, s + S_WT + 512)
    fitAsym8(32, nmax, s + S_XT, s + S_WT, s + S_LT, L, 32, s + S_MINS, s + S_SCALES, s + S_WORK, rmin, ONE_TENTH, nstep, false)
    let maxScale: f32 = 0
    let maxMin: f32 = 0
    for (let j = 0; j < 8; j++) {
      const scale = load<f32>(s + S_SCALES + (<usize>j << 2))
      const theMin = load<f32>(s + S_MINS + (<usize>j << 2))
      if (scale > maxScale) maxScale = scale
      if (theMin > maxMin) maxMin = theMin
    }
    const invScale: f32 = maxScale > 0 ? <f32>63 / maxScale : 0
    const invMin: f32 = maxMin > 0 ? <f32>63 / maxMin : 0
    memory.fill(packed, 0, 12)
    for (let j = 0; j < 8; j++) {
      const ls = min<u32>(63, <u32>nearestInt(invScale * load<f32>(s + S_SCALES + (<usize>j << 2))) & 0xff)
      const lm = min<u32>(63, <u32>nearestInt(invMin * load<f32>(s + S_MINS + (<usize>j << 2))) & 0xff)
      if (j < 4) {
        store<u8>(packed + <usize>j, <u8>ls)
        store<u8>(packed + <usize>(j + 4), <u8>lm)
      } else {
        store<u8>(packed + <usize>(j + 4), <u8>((ls & 0xf) | ((lm & 0xf) << 4)))
        store<u8>(packed + <usize>(j - 4), load<u8>(packed + <usize>(j - 4)) | <u8>((ls >> 4) << 6))
        store<u8>(packed + <usize>j, load<u8>(packed + <usize>j) | <u8>((lm >> 4) << 6))
      }
    }
    const dBits = f32ToF16(maxScale / 63)
    const dminBits = f32ToF16(maxMin / 63)
    store<u16>(y, <u16>dBits)
    store<u16>(y, <u16>dminBits, 2)
    const dAll = f16ToF32Scalar(dBits)
    const dminAll = f16ToF32Scalar(dminBits)
    for (let j = 0; j < 8; j++) {
      const d = dAll * <f32>packedScale(packed, j)
      // C keeps the fit's levels when d is 0 (rare: a scale that rounds to 0); they are already in L.
      if (d == 0) continue
      asymmetricLevels(32, x + (<usize>j << 7), d, dminAll * <f32>packedMin(packed, j), nmax, L + (<usize>j << 5))
    }
    packQ45K(L, y, five)
  }
}

export function quantize_q4_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  quantizeK(src, dst, nblocks, 15, -1, 20, 144, scratch)
}

export function quantize_q5_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  quantizeK(src, dst, nblocks, 31, -0.5, 15, 176, scratch)
}

/**
 * Q6_K, 210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d (quantize_row_q6_K_ref). Each
 * sub-block of 16 is fitted by make_qx_quants(16, 32, x, rmse_type 1, no importances: weights x²), the best
 * of 19 symmetric grids (levels -32..31), four sub-blocks per vector.
 */
export function quantize_q6_k(src: usize, dst: usize, nblocks: i32, scratch: usize): void {
  const s = scratch
  const L = s + S_L
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 10)
    const y = dst + <usize>b * 210
    for (let j0 = 0; j0 < 16; j0 += 4) {
      const xs = x + (<usize>j0 << 6)
      transpose4(16, xs, xs + 64, xs + 128, xs + 192, s + S_XT)
      for (let i = 0; i < 16; i++) {
        const v = v128.load(s + S_XT + (<usize>i << 4))
        v128.store(s + S_WT + (<usize>i << 4), f32x4.mul(v, v))
      }
      const scales = fitSymmetric4(16, 32, s + S_XT, s + S_WT, s + S_LT, L + (<usize>j0 << 4), 16, s + S_WORK)
      v128.store(s + S_SCALES + (<usize>j0 << 2), scales)
    }
    let maxScale: f32 = 0
    let maxAbsScale: f32 = 0
    for (let ib = 0; ib < 16; ib++) {
      const scale = load<f32>(s + S_SCALES + (<usize>ib << 2))
      if (abs<f32>(scale) > maxAbsScale) {
        maxAbsScale = abs<f32>(scale)
        maxScale = scale
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      memory.fill(y, 0, 210)
      continue
    }
    const iscale: f32 = <f32>-128 / maxScale
    const dBits = f32ToF16(1 / iscale)
    store<u16>(y, <u16>dBits, 208)
    for (let ib = 0; ib < 16; ib++) {
      store<i8>(y + 192 + <usize>ib, <i8>min<i32>(127, nearestInt(iscale * load<f32>(s + S_SCALES + (<usize>ib << 2)))))
    }
    const dAll = f16ToF32Scalar(dBits)
    for (let j = 0; j < 16; j++) {
      const d = dAll * <f32>load<i8>(y + 192 + <usize>j)
      // C keeps the fit's levels when d is 0; they are already in L.
      if (d == 0) continue
      symmetricLevels16(x + (<usize>j << 6), d, 32, L + (<usize>j << 4))
    }
    packQ6K(L, y)
  }
}
