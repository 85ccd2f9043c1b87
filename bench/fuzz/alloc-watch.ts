// Records the largest single buffer requested while a case runs. RSS alone cannot see an allocation
// sized by a claimed value: a zero-filled ArrayBuffer of gigabytes costs no resident memory until it is
// touched. So the constructors that take a length are wrapped (alloc-hooks.mjs) before any engine module
// loads, on this thread and, through a wrapped Worker constructor, in every worker thread the engine
// starts (the parser worker walks GGUF files and large headers): workers report over a BroadcastChannel.
// Import this module first.

import { createRequire, syncBuiltinESMExports } from 'node:module'
import { pathToFileURL } from 'node:url'
import type { Worker as WorkerType, WorkerOptions } from 'node:worker_threads'
import { ALLOCATION_CHANNEL, installAllocationHooks } from './alloc-hooks.mjs'

let largest = 0

function note(bytes: number): void {
  if (bytes > largest) largest = bytes
}

installAllocationHooks(note)

const require = createRequire(import.meta.url)
const threads = require('node:worker_threads') as typeof import('node:worker_threads')
const OriginalWorker = threads.Worker
const workerHooks = new URL('./alloc-hooks-worker.mjs', import.meta.url).href

/** A Worker that loads the allocation hooks before its own entry module. */
class WatchedWorker extends OriginalWorker {
  constructor(file: string | URL, options: WorkerOptions = {}) {
    if (options.eval) {
      super(file, options)
      return
    }
    const target = file instanceof URL ? file.href : pathToFileURL(String(file)).href
    super(`import(${JSON.stringify(workerHooks)}).then(() => import(${JSON.stringify(target)}))`, {
      ...options,
      eval: true,
    })
  }
}
;(threads as { Worker: typeof WorkerType }).Worker = WatchedWorker
syncBuiltinESMExports()

const channel = new threads.BroadcastChannel(ALLOCATION_CHANNEL)
channel.onmessage = (e: unknown) => note(Number((e as { data: unknown }).data))
channel.unref()

/** Starts a new measurement window. */
export function resetLargestAllocation(): void {
  largest = 0
}

/** The largest single buffer (bytes) requested since the last reset. */
export function largestAllocation(): number {
  return largest
}
