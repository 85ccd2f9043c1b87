// The pool worker for real: two worker_threads instantiate the built kernels over one shared memory and
// convert disjoint regions at the same time (checked against the TS reference); a request's file read
// lands in kernel memory before its calls run, and a read that fails answers with its kind.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Worker } from 'node:worker_threads'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { compileKernels, createKernelMemory, instantiateKernels, locatePoolWorker } from '../../../kernels/host/load'
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker-protocol'
import { convertBF16 } from '../../../kernels/reference/convert'
import { moments } from '../../../kernels/reference/stats'
import { firstBitDifference, rng } from '../../../kernels/testing/kernel-harness'

let memory: WebAssembly.Memory
let heapBase: number
const workers: Worker[] = []
let nextId = 1

function request(worker: Worker, calls: WorkerRequest['calls'], read?: WorkerRequest['read']): Promise<WorkerReply> {
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
    worker.postMessage({ id, calls, ...(read ? { read } : {}) } satisfies WorkerRequest)
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

describe('pool worker: kernel calls', () => {
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

describe('pool worker: reading a file range first', () => {
  let dir: string
  let file: string
  let fd: number
  const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7 + 3) & 0xff)

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'whittle-pool-read-'))
    file = path.join(dir, 'data.bin')
    writeFileSync(file, bytes)
    fd = openSync(file, 'r')
  })

  afterAll(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })

  it('copies the range into kernel memory, then runs the calls on it', async () => {
    const base = Math.ceil(heapBase / 64) * 64
    const position = 1001
    const n = 20_000 // bf16 values
    const out = base + 65536
    if (out + n * 4 > memory.buffer.byteLength) memory.grow(Math.ceil((out + n * 4 - memory.buffer.byteLength) / 65536))
    new Uint8Array(memory.buffer, base, n * 2).fill(0)
    const reply = await request(workers[0], [['convert_bf16', base, out, n]], {
      fd,
      position,
      length: n * 2,
      ptr: base,
    })
    expect(reply.ok).toBe(true)
    const read = new Uint8Array(memory.buffer, base, n * 2)
    expect(Buffer.from(read).equals(Buffer.from(bytes.subarray(position, position + n * 2)))).toBe(true)
    const expected = new Float32Array(n)
    convertBF16(new Uint16Array(bytes.slice(position, position + n * 2).buffer), expected)
    expect(firstBitDifference(new Float32Array(memory.buffer, out, n), expected)).toBe(-1)
  })

  it('answers a read past the end of the file as truncated, runs no call, and keeps working', async () => {
    const base = Math.ceil(heapBase / 64) * 64
    const marker = base + 65536
    new Uint32Array(memory.buffer, marker, 1)[0] = 0xdeadbeef
    const reply = await request(workers[1], [['convert_bf16', base, marker, 4]], {
      fd,
      position: bytes.length - 10,
      length: 100,
      ptr: base,
    })
    expect(reply).toMatchObject({ ok: false, read: 'truncated' })
    expect(new Uint32Array(memory.buffer, marker, 1)[0]).toBe(0xdeadbeef)
    const after = await request(workers[1], [], { fd, position: 0, length: 16, ptr: base })
    expect(after.ok).toBe(true)
  })

  it('answers a bad descriptor as an I/O failure and a range outside memory as malformed', async () => {
    const base = Math.ceil(heapBase / 64) * 64
    const badFd = await request(workers[0], [], { fd: 987_654, position: 0, length: 16, ptr: base })
    expect(badFd).toMatchObject({ ok: false, read: 'io' })
    const outside = await request(workers[0], [], { fd, position: 0, length: 16, ptr: memory.buffer.byteLength })
    expect(outside).toMatchObject({ ok: false, read: 'io', error: 'malformed read request' })
  })
})
