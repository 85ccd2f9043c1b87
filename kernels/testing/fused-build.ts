// What the relaxed-SIMD build's tests (kernels/test/*-fused.test.ts) share: the build itself where the
// runtime has relaxed SIMD, whether this CPU fuses multiply-adds, and deterministic test values.

import { readFileSync } from 'node:fs'
import type { KernelExports } from '../host/exports'
import { compileKernels, createKernelMemory, instantiateKernels, kernelVariantOf } from '../host/load'

/** Whether this x64 CPU has FMA: then the fused build must differ from the twins somewhere. */
export const cpuHasFma = ((): boolean => {
  try {
    return /^flags\s*:.*\bfma\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'))
  } catch {
    return false
  }
})()

/** The fused build in its own memory, or null where the runtime lacks relaxed SIMD (and falls back). */
export async function loadFusedKernels(
  pages = 256,
): Promise<{ kernels: KernelExports; memory: WebAssembly.Memory } | null> {
  const memory = createKernelMemory(pages)
  const module = await compileKernels('fused')
  if (kernelVariantOf(module) !== 'fused') return null
  return { kernels: instantiateKernels(module, memory), memory }
}

/** Copies `data` to byte address `at` of `memory`; returns the next 16-byte-aligned address after it. */
export function putAt(memory: WebAssembly.Memory, at: number, data: Float32Array): number {
  new Float32Array(memory.buffer, at, data.length).set(data)
  return at + Math.ceil((data.length * 4) / 16) * 16
}

/** Deterministic values of mixed sign and magnitude (every 17th one 40× larger, so rounding differences show). */
export function mixedValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const u = s / 2 ** 32 - 0.5
    out[i] = i % 17 === 0 ? u * 40 : u
  }
  return out
}
