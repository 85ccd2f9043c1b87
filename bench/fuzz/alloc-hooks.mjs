// Wraps the constructors that take a length (ArrayBuffer, SharedArrayBuffer, every typed array,
// Buffer.alloc*) so that `note(bytes)` hears of every buffer requested. Plain JS: it is also loaded,
// ahead of their own code, into the worker threads the engine starts (see alloc-watch.ts).

const TYPED = [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
]

export function installAllocationHooks(note) {
  const g = globalThis
  for (const name of TYPED) {
    const Ctor = g[name]
    const size = Ctor.BYTES_PER_ELEMENT
    g[name] = new Proxy(Ctor, {
      construct(target, args, newTarget) {
        if (typeof args[0] === 'number') note(args[0] * size)
        return Reflect.construct(target, args, newTarget)
      },
    })
  }
  for (const name of ['ArrayBuffer', 'SharedArrayBuffer']) {
    g[name] = new Proxy(g[name], {
      construct(target, args, newTarget) {
        if (typeof args[0] === 'number') note(args[0])
        return Reflect.construct(target, args, newTarget)
      },
    })
  }
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow']) {
    const original = Buffer[name]
    Buffer[name] = function (size, ...rest) {
      if (typeof size === 'number') note(size)
      return original.call(Buffer, size, ...rest)
    }
  }
}

/** Channel on which worker threads report their large requests to the main thread. */
export const ALLOCATION_CHANNEL = 'whittle-fuzz-allocations'
