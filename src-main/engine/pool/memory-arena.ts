// A first-fit allocator over the one shared WebAssembly.Memory that every worker instantiates.
// The kernels allocate nothing themselves (see kernels/README.md): the engine hands them regions from here.
// Regions are 64-byte aligned so v128 loads never straddle a cache line needlessly.
// Running out is a typed WhittleError('out-of-memory'), so callers with a slower fallback (the TS
// reference path) can recognise it by its code.

import { isOutOfMemory, WhittleError } from '../errors'

const ALIGN = 64
const PAGE = 65536

export interface Region {
  readonly ptr: number
  readonly bytes: number
}

export class MemoryArena {
  private readonly memory: WebAssembly.Memory
  private readonly maxBytes: number
  /** Free blocks, sorted by ptr, coalesced on free. */
  private free: { ptr: number; bytes: number }[] = []
  private top: number
  private live = new Map<number, number>()

  constructor(memory: WebAssembly.Memory, heapBase: number, maxPages: number) {
    this.memory = memory
    this.maxBytes = maxPages * PAGE
    this.top = alignUp(heapBase)
  }

  get liveBytes(): number {
    let sum = 0
    for (const b of this.live.values()) sum += b
    return sum
  }

  /** Bytes that may still be allocated under the ceiling (less whatever fragmentation leaves unusable). */
  get headroom(): number {
    return this.maxBytes - this.liveBytes
  }

  /** `what` names the allocation in the out-of-memory error ("a 5632×5632 Hessian"). */
  alloc(bytes: number, what = 'a kernel buffer'): Region {
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new WhittleError('validation', null, `arena: bad allocation size ${bytes} for ${what}`)
    const size = alignUp(bytes)
    const i = this.free.findIndex((b) => b.bytes >= size)
    let ptr: number
    if (i >= 0) {
      const block = this.free[i]
      ptr = block.ptr
      if (block.bytes === size) this.free.splice(i, 1)
      else {
        block.ptr += size
        block.bytes -= size
      }
    } else {
      ptr = this.top
      const end = ptr + size
      if (end > this.maxBytes) throw this.outOfMemory(size, what)
      const have = this.memory.buffer.byteLength
      if (end > have) {
        try {
          this.memory.grow(Math.ceil((end - have) / PAGE))
        } catch {
          // The OS refused to commit more of the reserved memory.
          throw this.outOfMemory(size, what)
        }
      }
      this.top = end
    }
    this.live.set(ptr, size)
    return { ptr, bytes: size }
  }

  /**
   * One region per size, all or none: null where kernel memory cannot hold them all (nothing is then
   * held), for callers with a slower path that needs no kernel memory.
   */
  tryAlloc(sizes: number[], what = 'a kernel buffer'): Region[] | null {
    const held: Region[] = []
    try {
      for (const bytes of sizes) held.push(this.alloc(bytes, what))
      return held
    } catch (e) {
      for (const r of held) this.release(r)
      if (isOutOfMemory(e)) return null
      throw e
    }
  }

  private outOfMemory(size: number, what: string): WhittleError {
    const mib = (n: number): string => (n / 2 ** 20).toFixed(0)
    return new WhittleError(
      'out-of-memory',
      null,
      `${what} needs ${mib(size)} MiB of kernel memory; ${mib(this.liveBytes)} MiB are in use and the kernel memory ceiling is ${mib(this.maxBytes)} MiB`,
    )
  }

  release(region: Region): void {
    const size = this.live.get(region.ptr)
    if (size === undefined) throw new WhittleError('validation', null, `arena: double free at ${region.ptr}`)
    this.live.delete(region.ptr)
    let j = 0
    while (j < this.free.length && this.free[j].ptr < region.ptr) j++
    this.free.splice(j, 0, { ptr: region.ptr, bytes: size })
    // Coalesce with neighbours, then give the tail back to `top` so long runs do not fragment.
    for (let k = Math.max(0, j - 1); k < this.free.length - 1;) {
      const a = this.free[k],
        b = this.free[k + 1]
      if (a.ptr + a.bytes === b.ptr) {
        a.bytes += b.bytes
        this.free.splice(k + 1, 1)
      } else k++
    }
    const last = this.free[this.free.length - 1]
    if (last && last.ptr + last.bytes === this.top) {
      this.top = last.ptr
      this.free.pop()
    }
  }

  // Views are made fresh each time: memory.grow replaces the SharedArrayBuffer object.
  f32(region: Region, offsetBytes = 0, length?: number): Float32Array {
    return new Float32Array(this.memory.buffer, region.ptr + offsetBytes, length ?? (region.bytes - offsetBytes) >> 2)
  }
  f64(region: Region, offsetBytes = 0, length?: number): Float64Array {
    return new Float64Array(this.memory.buffer, region.ptr + offsetBytes, length ?? (region.bytes - offsetBytes) >> 3)
  }
  u32(region: Region, offsetBytes = 0, length?: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, region.ptr + offsetBytes, length ?? (region.bytes - offsetBytes) >> 2)
  }
  u8(region: Region, offsetBytes = 0, length?: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, region.ptr + offsetBytes, length ?? region.bytes - offsetBytes)
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN
}
