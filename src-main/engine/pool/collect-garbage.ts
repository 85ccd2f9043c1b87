// A full garbage collection on request, for the points of a long job where hundreds of MB of typed
// arrays have just been let go (a 7B layer's Hessians, a group's weights once they are in the view).
//
// V8 frees an ArrayBuffer's memory only when it collects the object, and it schedules collections by
// the pressure on its own heap, which these arrays hardly touch. On the 7B GPTQ run (issue #15) a
// group's dropped weights and Hessians stayed resident into the next group's factorization, so the
// peak RSS depended on when V8 happened to collect: layer 0 peaked at 3.11 GiB on one run and at
// 3.53 GiB on the next, after a change that could only have lowered it.

import v8 from 'node:v8'
import vm from 'node:vm'

/** Below this many bytes let go, a collection (tens of ms) costs more than the memory is worth. */
export const COLLECT_GARBAGE_MIN_BYTES = 64 << 20

let gc: (() => void) | null | undefined

function collector(): (() => void) | null {
  if (gc !== undefined) return gc
  const exposed = (globalThis as { gc?: () => void }).gc
  if (typeof exposed === 'function') return (gc = exposed)
  try {
    // The flag exposes gc() to contexts created from now on; a fresh context hands it over.
    v8.setFlagsFromString('--expose-gc')
    const fn: unknown = vm.runInNewContext('gc')
    gc = typeof fn === 'function' ? (fn as () => void) : null
  } catch {
    gc = null // a runtime that refuses the flag still runs, only with V8's own timing
  }
  return gc
}

/**
 * Collects garbage now when `bytes` (what the caller has just dropped) is worth it. The memory of the
 * dropped arrays goes back to the OS before this returns.
 */
export function collectGarbage(bytes: number): void {
  if (bytes < COLLECT_GARBAGE_MIN_BYTES) return
  collector()?.()
}
