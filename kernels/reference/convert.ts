// Reference twin of kernels/assembly/convert.ts: narrow float encodings to f32.
// Every conversion here is exact (each source value is representable in f32), so the WASM kernels and
// these functions agree bit for bit on every non-NaN input; NaNs agree as NaN (JS numbers carry no payload).
// The scalar functions decode from the IEEE fields directly; they are the definition the kernels' bit
// tricks are tested against.

const TWO_POW = (e: number): number => 2 ** e

/** IEEE binary16 bit pattern -> value. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >> 10) & 0x1f
  const mantissa = bits & 0x3ff
  if (exponent === 0) return sign * mantissa * TWO_POW(-24) // zero or subnormal
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN
  return sign * (1024 + mantissa) * TWO_POW(exponent - 25)
}

/** The little-endian fp16 at bytes[at], bytes[at + 1] -> value (how every GGUF block stores its scales). */
export function readF16(bytes: Uint8Array, at: number): number {
  return f16ToF32(bytes[at] | (bytes[at + 1] << 8))
}

/** bfloat16 bit pattern (the top half of an f32) -> value. */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16
  return scratchF32[0]
}

/** OCP FP8 E4M3FN: bias 7, no infinities, S.1111.111 is NaN, largest finite 448. */
export function f8e4m3ToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1
  const exponent = (bits >> 3) & 0xf
  const mantissa = bits & 0x7
  if (exponent === 0xf && mantissa === 0x7) return NaN
  if (exponent === 0) return sign * mantissa * TWO_POW(-9)
  return sign * (8 + mantissa) * TWO_POW(exponent - 10)
}

/** OCP FP8 E5M2: bias 15, IEEE-like with infinities and NaNs (the top byte of an f16). */
export function f8e5m2ToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1
  const exponent = (bits >> 2) & 0x1f
  const mantissa = bits & 0x3
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN
  if (exponent === 0) return sign * mantissa * TWO_POW(-16)
  return sign * (4 + mantissa) * TWO_POW(exponent - 17)
}

const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

// Lookup tables built on first use: F16 and the FP8 types have few enough patterns that a table is the
// fastest exact decoder, and the tables are filled from the field-level functions above.
let f16Table: Float32Array | null = null
let e4m3Table: Float32Array | null = null
let e5m2Table: Float32Array | null = null

function buildTable(size: number, decode: (bits: number) => number): Float32Array {
  const table = new Float32Array(size)
  for (let i = 0; i < size; i++) table[i] = decode(i)
  return table
}

function checkLengths(what: string, srcLength: number, dst: Float32Array): void {
  if (dst.length < srcLength) {
    throw new RangeError(`${what}: destination holds ${dst.length} values, ${srcLength} needed`)
  }
}

/** Decodes every element of `src` into `dst[0..src.length)`. */
export function convertF16(src: Uint16Array, dst: Float32Array): void {
  checkLengths('convertF16', src.length, dst)
  const table = (f16Table ??= buildTable(65536, f16ToF32))
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]]
}

/** Decodes every element of `src` into `dst[0..src.length)`; NaN payloads are kept (a plain shift). */
export function convertBF16(src: Uint16Array, dst: Float32Array): void {
  checkLengths('convertBF16', src.length, dst)
  const out = new Uint32Array(dst.buffer, dst.byteOffset, src.length)
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16
}

export function convertF8E4M3(src: Uint8Array, dst: Float32Array): void {
  checkLengths('convertF8E4M3', src.length, dst)
  const table = (e4m3Table ??= buildTable(256, f8e4m3ToF32))
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]]
}

export function convertF8E5M2(src: Uint8Array, dst: Float32Array): void {
  checkLengths('convertF8E5M2', src.length, dst)
  const table = (e5m2Table ??= buildTable(256, f8e5m2ToF32))
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]]
}
