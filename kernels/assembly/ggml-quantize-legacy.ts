// f32 -> the legacy 32-element GGUF types Q4_1, Q5_0, Q5_1, byte-exact with llama.cpp's
// quantize_row_q4_1_ref / q5_0_ref / q5_1_ref. Twin: kernels/reference/ggml-quantize-legacy.ts, which
// explains the casts. The min/max and absmax scans stay scalar: C keeps the first of equal values, and the
// sign of a zero min reaches the stored fp16 m, so a lane-parallel scan could change the bytes.

import { castToInt32, f32ToF16 } from './ggml-quantize'

const FLT_MAX: f32 = 3.4028234663852886e38

// The last minMax32's results (one instance is one thread; read right after the call).
let blockMin: f32 = 0
let blockMax: f32 = 0

// @ts-ignore: decorator
@inline function minMax32(x: usize): void {
  let lo = FLT_MAX
  let hi = -FLT_MAX
  for (let j = 0; j < 32; j++) {
    const v = load<f32>(x + (<usize>j << 2))
    if (v < lo) lo = v
    if (v > hi) hi = v
  }
  blockMin = lo
  blockMax = hi
}

/** Q4_1, 20-byte blocks of 32: f16 d = (max − min) / 15, f16 m = min, qs[16]. */
export function quantize_q4_1(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 20
    minMax32(x)
    const lo = blockMin
    const d: f32 = (blockMax - lo) / 15
    const id: f32 = d != 0 ? 1 / d : 0
    store<u16>(y, <u16>f32ToF16(d))
    store<u16>(y, <u16>f32ToF16(lo), 2)
    for (let j = 0; j < 16; j++) {
      const low = min<i32>(15, <i8>castToInt32((load<f32>(x + (<usize>j << 2)) - lo) * id + <f32>0.5))
      const high = min<i32>(15, <i8>castToInt32((load<f32>(x + (<usize>(j + 16) << 2)) - lo) * id + <f32>0.5))
      store<u8>(y + 4 + <usize>j, <u8>((low & 0xff) | (high << 4)))
    }
  }
}

/** Q5_0, 22-byte blocks of 32: f16 d = m / −16 (m: first element of largest magnitude), qh[4], qs[16]. */
export function quantize_q5_0(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 22
    let amax: f32 = 0
    let m: f32 = 0
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(x + (<usize>j << 2))
      if (amax < abs<f32>(v)) {
        amax = abs<f32>(v)
        m = v
      }
    }
    const d: f32 = m / -16
    const id: f32 = d != 0 ? 1 / d : 0
    store<u16>(y, <u16>f32ToF16(d))
    let qh: u32 = 0
    for (let j = 0; j < 16; j++) {
      const low = <u32>min<i32>(31, <i8>castToInt32(load<f32>(x + (<usize>j << 2)) * id + <f32>16.5)) & 0xff
      const high = <u32>min<i32>(31, <i8>castToInt32(load<f32>(x + (<usize>(j + 16) << 2)) * id + <f32>16.5)) & 0xff
      store<u8>(y + 6 + <usize>j, <u8>((low & 0xf) | ((high & 0xf) << 4)))
      qh |= ((low & 0x10) >> 4) << <u32>j
      qh |= ((high & 0x10) >> 4) << <u32>(j + 16)
    }
    store<u32>(y, qh, 2)
  }
}

/** Q5_1, 24-byte blocks of 32: f16 d = (max − min) / 31, f16 m = min, qh[4], qs[16]; no clamp (C casts to uint8). */
export function quantize_q5_1(src: usize, dst: usize, nblocks: i32): void {
  for (let b = 0; b < nblocks; b++) {
    const x = src + (<usize>b << 7)
    const y = dst + <usize>b * 24
    minMax32(x)
    const lo = blockMin
    const d: f32 = (blockMax - lo) / 31
    const id: f32 = d != 0 ? 1 / d : 0
    store<u16>(y, <u16>f32ToF16(d))
    store<u16>(y, <u16>f32ToF16(lo), 2)
    let qh: u32 = 0
    for (let j = 0; j < 16; j++) {
      const low = <u32>castToInt32((load<f32>(x + (<usize>j << 2)) - lo) * id + <f32>0.5) & 0xff
      const high = <u32>castToInt32((load<f32>(x + (<usize>(j + 16) << 2)) - lo) * id + <f32>0.5) & 0xff
      store<u8>(y + 8 + <usize>j, <u8>((low & 0xf) | ((high & 0xf) << 4)))
      qh |= ((low & 0x10) >> 4) << <u32>j
      qh |= ((high & 0x10) >> 4) << <u32>(j + 16)
    }
    store<u32>(y, qh, 4)
  }
}
