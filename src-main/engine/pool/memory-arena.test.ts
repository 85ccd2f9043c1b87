import { describe, expect, it } from 'vitest'
import { MemoryArena } from './memory-arena'

function arena(pages = 2, max = 16): { a: MemoryArena; memory: WebAssembly.Memory } {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: max, shared: true })
  return { a: new MemoryArena(memory, 100, max), memory }
}

describe('MemoryArena', () => {
  it('hands out aligned, disjoint regions above the heap base', () => {
    const { a } = arena()
    const r1 = a.alloc(10),
      r2 = a.alloc(1000),
      r3 = a.alloc(1)
    for (const r of [r1, r2, r3]) expect(r.ptr % 64).toBe(0)
    expect(r1.ptr).toBeGreaterThanOrEqual(100)
    const spans = [r1, r2, r3].map((r) => [r.ptr, r.ptr + r.bytes]).sort((x, y) => x[0] - y[0])
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1])
  })

  it('grows the shared memory on demand and refuses past the ceiling', () => {
    const { a, memory } = arena(1, 4)
    const before = memory.buffer.byteLength
    a.alloc(3 * 65536)
    expect(memory.buffer.byteLength).toBeGreaterThan(before)
    expect(() => a.alloc(2 * 65536)).toThrow(/ceiling/)
  })

  it('reuses freed space and coalesces neighbours', () => {
    const { a } = arena()
    const r1 = a.alloc(64),
      r2 = a.alloc(64),
      r3 = a.alloc(64)
    a.release(r1)
    a.release(r2)
    const big = a.alloc(128)
    expect(big.ptr).toBe(r1.ptr)
    a.release(big)
    a.release(r3)
    expect(a.liveBytes).toBe(0)
    expect(a.alloc(64).ptr).toBe(r1.ptr)
  })

  it('rejects a double free and nonsense sizes', () => {
    const { a } = arena()
    const r = a.alloc(64)
    a.release(r)
    expect(() => a.release(r)).toThrow(/double free/)
    expect(() => a.alloc(0)).toThrow()
    expect(() => a.alloc(Number.NaN)).toThrow()
  })
  it('tryAlloc holds all the regions or none, and still refuses nonsense', () => {
    const { a } = arena(1, 4)
    const both = a.tryAlloc([65536, 65536])
    expect(both).toHaveLength(2)
    expect(a.liveBytes).toBe(2 * 65536)
    // The first of these fits, the second does not: nothing stays held, and the answer is null.
    expect(a.tryAlloc([65536, 2 * 65536])).toBeNull()
    expect(a.liveBytes).toBe(2 * 65536)
    for (const r of both!) a.release(r)
    expect(a.tryAlloc([3 * 65536])).toHaveLength(1)
    expect(() => a.tryAlloc([64, 0])).toThrow(/bad allocation size/)
  })
})
