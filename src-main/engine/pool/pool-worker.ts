// The worker_threads entry of the engine's kernel pool (bundled by kernels/build.mjs to
// kernels/build/pool-worker.mjs). It instantiates the shared kernel module once over the shared memory,
// then answers requests: an optional read of a file range into that memory (see io/read-sync.ts for
// why the worker reads), then a list of kernel calls. A failing read or call (unknown name, bad
// argument, a trap) becomes an error reply, never a crash.

import { parentPort, workerData } from 'node:worker_threads'
import { instantiateKernels } from '../../../kernels/host/load'
import { readIntoMemory } from '../io/read-sync'
import type { FileRead, KernelCall, WorkerInit, WorkerReply, WorkerRequest } from './worker-protocol'

if (!parentPort) throw new Error('pool-worker must run as a worker thread')
const port = parentPort
const init = workerData as WorkerInit
const kernels = instantiateKernels(init.module, init.memory)
const table = kernels as unknown as Record<string, (...args: number[]) => unknown>

/** Any function the module exports is callable (the forward-pass kernels included); nothing else is. */
function isExportedFunction(name: string): boolean {
  return Object.hasOwn(table, name) && typeof table[name] === 'function'
}

function runCall(call: KernelCall): number | undefined {
  if (!Array.isArray(call) || typeof call[0] !== 'string') throw new Error('malformed kernel call')
  const [name, ...args] = call
  if (!isExportedFunction(name)) throw new Error(`unknown kernel ${JSON.stringify(name)}`)
  for (const a of args) {
    // Anything else would be coerced by WebAssembly's ToInt32/ToNumber into some pointer silently.
    if (typeof a !== 'number') throw new Error(`kernel ${name}: argument ${String(a)} is not a number`)
  }
  const r = table[name](...args)
  return typeof r === 'number' ? r : undefined
}

/** The read's failure reply, or null once its bytes are in place. */
function runRead(id: number, read: FileRead): WorkerReply | null {
  const outcome = readIntoMemory(init.memory.buffer, read)
  return outcome.ok ? null : { id, ok: false, error: outcome.message, read: outcome.failure }
}

port.on('message', (request: WorkerRequest) => {
  const id = typeof request?.id === 'number' ? request.id : -1
  let reply: WorkerReply
  let current: string | undefined
  try {
    if (!Array.isArray(request?.calls)) throw new Error('malformed request: no list of calls')
    const failedRead = request.read ? runRead(id, request.read) : null
    if (failedRead) {
      port.postMessage(failedRead)
      return
    }
    const results: number[] = []
    let returned = false
    for (const call of request.calls) {
      current = Array.isArray(call) && typeof call[0] === 'string' ? call[0] : undefined
      const r = runCall(call)
      if (r !== undefined) returned = true
      results.push(r ?? 0)
    }
    reply = returned ? { id, ok: true, results } : { id, ok: true }
  } catch (e) {
    // A trap is a WebAssembly.RuntimeError ("memory access out of bounds", "unreachable"): keep its kind.
    const what = e instanceof Error ? (e.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : e.message) : String(e)
    reply = { id, ok: false, error: what, ...(current ? { kernel: current } : {}) }
  }
  port.postMessage(reply)
})
