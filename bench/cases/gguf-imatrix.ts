// GGUF quantization with and without an importance matrix (issue #13: "quantization with an imatrix must
// run at least as fast as without one"): every type llama-quantize weighs by an imatrix, on the block
// Linears of the first decoder layers of the synthetic TinyLlama-1.1B shape (BF16; BENCH_IMATRIX_LAYERS,
// default 1, ≈ 44M weights a layer), streamed from the file as the GGUF export streams them (read, decode,
// quantize, decode back and compare) on 2 workers. The importances are deterministic and uneven per column.
// Each type runs plain, weighted, plain, weighted; the best of the two runs of each is reported, as wall
// time and as the process's CPU time (workers included), which other load on the machine disturbs less.
// BENCH_IMATRIX_TYPES (comma-separated, e.g. Q4_0,Q4_1) limits the types; BENCH_IMATRIX_RUNS (default 2)
// sets the runs of each (BENCH_IMATRIX_LAYERS=0 skips this part).
//
// Then the kernels alone, on one thread in this process (256 × 2048 f32, roughly normal, the same uneven
// importances): the least CPU time of BENCH_KERNEL_RUNS (default 15) runs of each type's plain and weighted
// quantizer, alternated. CPU time, not wall time: on the shared machine the least disturbed run is the
// one that got a core to itself. With BENCH_KERNEL_BASELINE=<an older kernels.wasm>, that build's plain
// and weighted quantizers are timed in turn with the current ones (the "before → after" of a kernel
// change) and the bytes of both are compared.

import { readFileSync } from 'node:fs'
import { quantizeEntryGgufParallel } from '../../src-main/engine/compress/gguf-types/quantize-tensor-parallel'
import { ggufKernels } from '../../src-main/engine/compress/gguf-types/quantize-tensor'
import { isBlockLinear } from '../../src-main/engine/compress/recipe/targets'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { IMATRIX_TYPES } from '../../kernels/reference/ggml-quantize-imatrix'
import { BLOCK_GEOMETRY } from '../../kernels/reference/ggml-dequant-all'
import { compileKernels, createKernelMemory, instantiateKernels } from '../../kernels/host/load'
import { QUANT_SCRATCH_BYTES, type KernelExports } from '../../kernels/host/exports'
import type { BlockType } from '../../kernels/reference/ggml-dequant-all'
import { syntheticModel } from '../models'
import { emit, peakRss } from '../rows'

const LAYERS = Number(process.env.BENCH_IMATRIX_LAYERS ?? 1)
const RUNS = Number(process.env.BENCH_IMATRIX_RUNS ?? 2)
const KERNEL_RUNS = Number(process.env.BENCH_KERNEL_RUNS ?? 15)
const KERNEL_BASELINE = process.env.BENCH_KERNEL_BASELINE
const onlyTypes = process.env.BENCH_IMATRIX_TYPES?.split(',').map((t) => t.trim().toUpperCase())
const types = IMATRIX_TYPES.filter((t) => !onlyTypes || onlyTypes.includes(t))
const dir = await syntheticModel('tinyllama-1.1b', 'BF16')
const model = await loadModel(dir)
const linears = model.tensors.filter((t) => isBlockLinear(t) && t.layer !== null && t.layer < LAYERS)
const weights = linears.reduce((a, t) => a + t.shape[0] * t.shape[1], 0)
const importances = new Map(
  linears.map((t) => [t.name, Float32Array.from({ length: t.shape[1] }, (_, c) => 1 + ((c * 7919) % 97) / 10)]),
)
const pool = await WorkerPool.create({ threads: 2 })

interface Timing {
  wall: number
  /** CPU seconds of the whole process (main thread and workers): steadier than wall time on a shared machine. */
  cpu: number
}

async function seconds(type: BlockType, weighted: boolean): Promise<Timing> {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  for (const t of linears) {
    const importance = weighted ? importances.get(t.name)! : null
    await quantizeEntryGgufParallel(pool, model.entry(t.name), type, { importance })
  }
  const c = process.cpuUsage(c0)
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 }
}

const best = (a: Timing, b: Timing): Timing => ({ wall: Math.min(a.wall, b.wall), cpu: Math.min(a.cpu, b.cpu) })

try {
  // BENCH_IMATRIX_LAYERS=0: the kernels alone.
  for (const type of LAYERS > 0 ? types : []) {
    let plain: Timing = { wall: Infinity, cpu: Infinity }
    let withImatrix: Timing = { wall: Infinity, cpu: Infinity }
    for (let run = 0; run < RUNS; run++) {
      plain = best(plain, await seconds(type, false))
      withImatrix = best(withImatrix, await seconds(type, true))
    }
    emit({
      case: `GGUF quantize with / without imatrix, TinyLlama-1.1B shape, ${LAYERS} layer(s) (${(weights / 1e6).toFixed(0)}M weights), 2 workers`,
      variant: type,
      measure: 'wall s with / without (CPU s with / without)',
      value: `${withImatrix.wall.toFixed(2)} / ${plain.wall.toFixed(2)} (${withImatrix.cpu.toFixed(2)} / ${plain.cpu.toFixed(2)})`,
      ratio: `${(withImatrix.wall / plain.wall).toFixed(2)}x (CPU ${(withImatrix.cpu / plain.cpu).toFixed(2)}x)`,
      peakRss: peakRss(),
    })
  }
} finally {
  await pool.close()
}

const KERNEL_ROWS = 256
const KERNEL_COLS = 2048

/** One kernel instance over its own memory, holding the test matrix, its importances and the outputs. */
interface KernelBench {
  k: KernelExports
  memory: WebAssembly.Memory
  src: number
  dst: number
  qw: number
  scratch: number
}

function kernelBench(module: WebAssembly.Module, x: Float32Array, qw: Float32Array): KernelBench {
  const memory = createKernelMemory(64, 16384)
  const k = instantiateKernels(module, memory)
  const src = Math.ceil(k.heap_base() / 16) * 16
  const dst = src + x.byteLength
  const qwPtr = dst + x.byteLength // a quantized matrix is smaller than its f32 values
  const scratch = qwPtr + qw.byteLength
  const need = scratch + QUANT_SCRATCH_BYTES - memory.buffer.byteLength
  if (need > 0) memory.grow(Math.ceil(need / 65536))
  new Float32Array(memory.buffer, src, x.length).set(x)
  new Float32Array(memory.buffer, qwPtr, qw.length).set(qw)
  return { k, memory, src, dst, qw: qwPtr, scratch }
}

/** CPU milliseconds of one call of the type's plain (or weighted) quantizer over the whole matrix. */
function kernelCpuMs(b: KernelBench, type: BlockType, weighted: boolean): number {
  const names = ggufKernels(type)
  const blocks = (KERNEL_ROWS * KERNEL_COLS) / BLOCK_GEOMETRY[type].elements
  const c0 = process.cpuUsage()
  if (weighted) {
    const run = b.k[names.weighted!] as (...args: number[]) => void
    run(b.src, b.dst, KERNEL_ROWS, KERNEL_COLS, b.qw, b.scratch)
  } else {
    const run = b.k[names.quantize!] as (...args: number[]) => void
    run(b.src, b.dst, blocks, b.scratch)
  }
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1000
}

function outputBytes(b: KernelBench, type: BlockType): Uint8Array {
  const bytes = ((KERNEL_ROWS * KERNEL_COLS) / BLOCK_GEOMETRY[type].elements) * BLOCK_GEOMETRY[type].bytes
  return new Uint8Array(b.memory.buffer, b.dst, bytes).slice()
}

async function kernelRows(): Promise<void> {
  let seed = 1
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
  const x = Float32Array.from(
    { length: KERNEL_ROWS * KERNEL_COLS },
    () => (random() + random() + random() - 1.5) * 0.02,
  )
  const qw = Float32Array.from({ length: KERNEL_COLS }, (_, c) => 1 + ((c * 7919) % 97) / 10)
  const current = kernelBench(await compileKernels(), x, qw)
  const baseline = KERNEL_BASELINE ? kernelBench(new WebAssembly.Module(readFileSync(KERNEL_BASELINE)), x, qw) : null
  for (const type of types) {
    let plain = Infinity
    let weighted = Infinity
    let before = Infinity
    let beforeWeighted = Infinity
    for (let run = 0; run < KERNEL_RUNS; run++) {
      plain = Math.min(plain, kernelCpuMs(current, type, false))
      weighted = Math.min(weighted, kernelCpuMs(current, type, true))
      if (baseline) {
        before = Math.min(before, kernelCpuMs(baseline, type, false))
        beforeWeighted = Math.min(beforeWeighted, kernelCpuMs(baseline, type, true))
      }
    }
    let beforeNote = ''
    if (baseline) {
      kernelCpuMs(current, type, false)
      kernelCpuMs(baseline, type, false)
      const same = Buffer.from(outputBytes(current, type)).equals(Buffer.from(outputBytes(baseline, type)))
      kernelCpuMs(current, type, true)
      kernelCpuMs(baseline, type, true)
      const sameWeighted = Buffer.from(outputBytes(current, type)).equals(Buffer.from(outputBytes(baseline, type)))
      const bytes = (equal: boolean): string => (equal ? 'identical' : 'DIFFER')
      beforeNote =
        `; baseline build: without ${before.toFixed(1)} ms (${(before / plain).toFixed(2)}x, bytes ${bytes(same)}),` +
        ` with ${beforeWeighted.toFixed(1)} ms (${(beforeWeighted / weighted).toFixed(2)}x, bytes ${bytes(sameWeighted)})`
    }
    emit({
      case: `GGUF quantize kernels with / without imatrix, ${KERNEL_ROWS} x ${KERNEL_COLS} f32, 1 thread, least CPU time of ${KERNEL_RUNS}`,
      variant: type,
      measure: 'CPU ms with / without',
      value: `${weighted.toFixed(1)} / ${plain.toFixed(1)}${beforeNote}`,
      ratio: `${(weighted / plain).toFixed(2)}x`,
    })
  }
}

await kernelRows()
