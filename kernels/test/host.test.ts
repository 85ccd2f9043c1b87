// The pool worker host for real: two worker_threads instantiate the built kernels over one shared memory
// and convert disjoint regions at the same time; results are checked against the TS reference.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Worker } from 'node:worker_threads'
import path from 'node:path'
import { existsSync } from 'node:fs'
import {
  compileKernels,
  createKernelMemory,
  instantiateKernels,
  locateKernelBuild,
  locatePoolWorker,
} from '../host/load'
import type { WorkerInit, WorkerReply, WorkerRequest } from '../host/protocol'
import { convertBF16 } from '../reference/convert'
import { moments } from '../reference/stats'
import { firstBitDifference, rng } from '../testing/kernel-harness'

let memory: WebAssembly.Memory
let heapBase: number
const workers: Worker[] = []
let nextId = 1

function request(worker: Worker, calls: WorkerRequest['calls']): Promise<WorkerReply> {
  const id = nextId++
  return new Promise((resolve, reject) => {
    const onMessage = (reply: WorkerReply) => {
      if (reply.id !== id) return
      worker.off('message', onMessage)
      worker.off('error', reject)
      resolve(reply)
    }
    worker.on('message', onMessage)
    worker.once('error', reject)
    worker.postMessage({ id, calls } satisfies WorkerRequest)
  })
}

beforeAll(async () => {
  const module = await compileKernels()
  memory = createKernelMemory(64, 16384)
  heapBase = instantiateKernels(module, memory).heap_base()
  for (let i = 0; i < 2; i++) {
    workers.push(new Worker(locatePoolWorker(), { workerData: { module, memory } satisfies WorkerInit }))
  }
})

afterAll(async () => {
  await Promise.all(workers.map((w) => w.terminate()))
})

describe('kernel build location', () => {
  it('finds kernels/build with the wasm and the bundled worker', () => {
    const dir = locateKernelBuild()
    expect(path.basename(dir)).toBe('build')
    expect(existsSync(path.join(dir, 'kernels.wasm'))).toBe(true)
    expect(locatePoolWorker()).toBe(path.join(dir, 'pool-worker.mjs'))
  })

  it('the module imports exactly the shared memory, which the host provides', async () => {
    const imports = WebAssembly.Module.imports(await compileKernels())
    expect(
      imports.every((i) => (i.module === 'env' && i.name === 'memory') || (i.module === 'env' && i.name === 'abort')),
    ).toBe(true)
    expect(imports.some((i) => i.kind === 'memory')).toBe(true)
  })

  it('refuses a module with imports it cannot satisfy', () => {
    // (module (import "env" "mystery" (func))) in binary form.
    const bytes = Uint8Array.from([
      0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 2, 0x0f, 1, 3, 0x65, 0x6e, 0x76, 7, 0x6d, 0x79, 0x73, 0x74,
      0x65, 0x72, 0x79, 0, 0,
    ])
    expect(() => instantiateKernels(new WebAssembly.Module(bytes), memory)).toThrow(/env\.mystery/)
  })
})

describe('pool worker', () => {
  it('two workers convert disjoint regions of one shared memory concurrently', async () => {
    const n = 300_001
    const random = rng(99)
    const inputs = [0, 1].map(() => Uint16Array.from({ length: n }, () => Math.floor(random() * 65536)))
    // Layout: [src0][src1][dst0][dst1], each 64-byte aligned.
    const align = (x: number) => Math.ceil(x / 64) * 64
    const src = [align(heapBase), align(heapBase) + align(n * 2)]
    const dst = [src[1] + align(n * 2), src[1] + align(n * 2) + align(n * 4)]
    const end = dst[1] + n * 4
    if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536))
    inputs.forEach((input, i) => new Uint16Array(memory.buffer, src[i], n).set(input))
    // Each worker gets its region in several calls, so the two interleave in time.
    const third = Math.floor(n / 3)
    const callsFor = (i: number): WorkerRequest['calls'] => [
      ['convert_bf16', src[i], dst[i], third],
      ['convert_bf16', src[i] + third * 2, dst[i] + third * 4, third],
      ['convert_bf16', src[i] + third * 4, dst[i] + third * 8, n - 2 * third],
    ]
    const replies = await Promise.all([request(workers[0], callsFor(0)), request(workers[1], callsFor(1))])
    expect(replies.map((r) => r.ok)).toEqual([true, true])
    for (let i = 0; i < 2; i++) {
      const expected = new Float32Array(n)
      convertBF16(inputs[i], expected)
      expect(firstBitDifference(new Float32Array(memory.buffer, dst[i], n), expected)).toBe(-1)
    }
  })

  it('runs a list of different kernels in order (convert, then moments of the result)', async () => {
    const n = 1003
    const base = Math.ceil(heapBase / 64) * 64
    const bits = Uint16Array.from({ length: n }, (_, i) => 0x3c00 + i) // f16 from 1.0 upwards
    new Uint16Array(memory.buffer, base, n).set(bits)
    const f32At = base + 4096,
      momentsAt = base + 16384
    const reply = await request(workers[1], [
      ['convert_f16', base, f32At, n],
      ['moments', f32At, n, momentsAt],
    ])
    expect(reply).toEqual({ id: expect.any(Number), ok: true })
    const expected = moments(new Float32Array(memory.buffer, f32At, n).slice())
    expect(firstBitDifference(new Float64Array(memory.buffer, momentsAt, 11), expected)).toBe(-1)
  })

  it('answers unknown kernels and bad arguments with an error, and keeps working', async () => {
    const unknown = await request(workers[0], [['no_such_kernel', 1, 2]])
    expect(unknown.ok).toBe(false)
    expect(!unknown.ok && unknown.error).toMatch(/unknown kernel "no_such_kernel"/)
    const proto = await request(workers[0], [['constructor']])
    expect(proto.ok).toBe(false)
    const badArg = await request(workers[0], [['convert_bf16', 0, 'x' as unknown as number, 1]])
    expect(!badArg.ok && badArg.error).toMatch(/not a number/)
    // A trap (out-of-bounds access) is reported, not fatal.
    const trap = await request(workers[0], [['convert_bf16', 0, 2 ** 31 - 64, 1024]])
    expect(trap.ok).toBe(false)
    const after = await request(workers[0], [['convert_bf16', heapBase, heapBase + 1024, 4]])
    expect(after.ok).toBe(true)
  })

  it('survives a malformed request', async () => {
    const worker = workers[1]
    const reply = await new Promise<WorkerReply>((resolve) => {
      worker.once('message', resolve)
      worker.postMessage({ id: 77, calls: 'nope' })
    })
    expect(reply).toMatchObject({ id: 77, ok: false })
  })
})
