// Test helpers: one kernel instance over its own memory, a bump allocator on it, copies in and out,
// and a seeded random source (so a failure reproduces).

import { compileKernels, createKernelMemory, instantiateKernels } from '../host/load'
import type { KernelExports } from '../host/exports'

export interface KernelHarness {
  k: KernelExports
  memory: WebAssembly.Memory
  /** `bytes` of fresh memory at an address that is `misalign` bytes past a 16-byte boundary. */
  alloc(bytes: number, misalign?: number): number
  /** Frees everything allocated so far. */
  reset(): void
  /** Typed views of memory (copies when `ptr` is misaligned for the type). */
  f32(ptr: number, n: number): Float32Array
  f64(ptr: number, n: number): Float64Array
  u32(ptr: number, n: number): Uint32Array
  u8(ptr: number, n: number): Uint8Array
  /** Copies a typed array into fresh memory; returns its address. */
  put(data: ArrayBufferView, misalign?: number): number
}

export async function loadKernels(): Promise<KernelHarness> {
  const memory = createKernelMemory(64, 16384)
  const k = instantiateKernels(await compileKernels(), memory)
  const base = Math.ceil(k.heap_base() / 16) * 16
  let top = base
  // A live view when `ptr` is aligned for the type, else a copy (typed arrays cannot start unaligned).
  const view =
    <T>(make: { new (b: ArrayBufferLike, o?: number, l?: number): T; BYTES_PER_ELEMENT: number }) =>
    (ptr: number, n: number): T =>
      ptr % make.BYTES_PER_ELEMENT === 0
        ? new make(memory.buffer, ptr, n)
        : new make(memory.buffer.slice(ptr, ptr + n * make.BYTES_PER_ELEMENT))
  const harness: KernelHarness = {
    k,
    memory,
    alloc(bytes, misalign = 0) {
      const ptr = Math.ceil(top / 16) * 16 + misalign
      top = ptr + bytes
      const need = top + 64 - memory.buffer.byteLength
      if (need > 0) memory.grow(Math.ceil(need / 65536))
      new Uint8Array(memory.buffer, ptr, bytes).fill(0xcd) // stale bytes must not look like results
      return ptr
    },
    reset() {
      top = base
    },
    f32: view(Float32Array),
    f64: view(Float64Array),
    u32: view(Uint32Array),
    u8: view(Uint8Array),
    put(data, misalign = 0) {
      const ptr = harness.alloc(data.byteLength, misalign)
      new Uint8Array(memory.buffer, ptr, data.byteLength).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      )
      return ptr
    },
  }
  return harness
}

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Roughly normal values (sum of uniforms), scaled. */
export function normalish(random: () => number, n: number, scale = 1, offset = 0): Float32Array {
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = offset + scale * (random() + random() + random() + random() - 2)
  return out
}

/** Special values sprinkled into test data. */
export const SPECIALS: readonly number[] = [
  0,
  -0,
  NaN,
  Infinity,
  -Infinity,
  1e-45,
  -1e-45,
  1.1754942e-38,
  3.4028235e38,
  -3.4028235e38,
]

/** `data` with a special value at roughly every `every`-th position (seeded). */
export function withSpecials(data: Float32Array, random: () => number, every = 7): Float32Array {
  const out = data.slice()
  for (let i = 0; i < out.length; i++) {
    if (random() * every < 1) out[i] = SPECIALS[Math.floor(random() * SPECIALS.length)]
  }
  return out
}

/** Same bits, or both NaN. Returns the first index that differs, or -1. */
export function firstBitDifference(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length)
  for (let i = 0; i < a.length; i++) {
    const x = a[i],
      y = b[i]
    if (Number.isNaN(x) && Number.isNaN(y)) continue
    if (!Object.is(x, y)) return i
  }
  return -1
}

export const ODD_SIZES: readonly number[] = [0, 1, 3, 5, 7, 8, 15, 16, 17, 33, 1000, 4099]
