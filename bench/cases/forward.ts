// The forward pass: matmul GFLOP/s (TS twin vs WASM SIMD on 1 thread and on 2 workers), and perplexity
// tokens/s on the real stories260K and on a synthetic TinyLlama-1.1B-shape model (first 2,048 tokens
// at seqlen 256), each with peak RSS.

import path from 'node:path'
import { matmulNT } from '../../kernels/reference/matmul'
import { perplexity } from '../../src-main/engine/eval/perplexity'
import { readTextFile, tokenizeForEval } from '../../src-main/engine/eval/tokenize-text'
import { matmul } from '../../src-main/engine/forward/parallel-ops'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { syntheticModel } from '../models'
import { bestOf, emit, peakRss } from '../rows'

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..')

// --- matmul: y[T, N] = x[T, K] · w[N, K]ᵀ
const T = 64,
  K = 2048,
  N = 2048
const flops = 2 * T * K * N
const x = Float32Array.from({ length: T * K }, (_, i) => Math.sin(i) * 0.1)
const w = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.7) * 0.02)
const tsSeconds = await bestOf(1, () => matmulNT(x, w, new Float32Array(T * N), T, K, N))
const label = `matmul ${T}×${K} · (${N}×${K})ᵀ, f32`
emit({
  case: label,
  variant: 'TS scalar (reference twin)',
  measure: 'GFLOP/s',
  value: (flops / tsSeconds / 1e9).toFixed(2),
  ratio: '1.0x',
})
for (const threads of [0, 2]) {
  const pool = await WorkerPool.create({ threads })
  const xr = pool.arena.alloc(x.byteLength),
    wr = pool.arena.alloc(w.byteLength),
    yr = pool.arena.alloc(T * N * 4)
  pool.arena.f32(xr).set(x)
  pool.arena.f32(wr).set(w)
  const s = await bestOf(5, () => matmul(pool, xr.ptr, wr.ptr, yr.ptr, T, K, N))
  await pool.close()
  emit({
    case: label,
    variant: threads === 0 ? 'WASM SIMD, 1 thread' : `WASM SIMD, ${threads} workers`,
    measure: 'GFLOP/s',
    value: (flops / s / 1e9).toFixed(2),
    ratio: `${(tsSeconds / s).toFixed(1)}x`,
  })
}

// --- perplexity throughput
async function pplRow(name: string, modelPath: string, ids: Int32Array, maxWindows?: number): Promise<void> {
  const pool = await WorkerPool.create({ threads: 2 })
  const model = await loadModel(modelPath)
  const r = await perplexity(pool, model, ids, { seqlen: 256, maxWindows })
  await pool.close()
  emit({
    case: `perplexity, ${name}`,
    variant: `WASM SIMD, 2 workers, seqlen 256`,
    measure: 'tokens/s',
    value: `${r.tokens_per_second.toFixed(0)} tok/s`,
    ratio: `${r.windows} windows, ${r.seconds.toFixed(1)} s, ppl ${r.ppl.toFixed(3)}`,
    peakRss: peakRss(),
  })
}

const demo = path.join(repo, 'resources/demo/stories260K')
const demoIds = await tokenizeForEval(
  (await loadModel(demo)).files,
  await readTextFile(path.join(repo, 'resources/text/tinystories_eval.txt')),
)
await pplRow('stories260K, bundled TinyStories eval (all 1,154 windows)', demo, demoIds)

const big = await syntheticModel('tinyllama-1.1b', 'BF16')
const bigIds = new Int32Array(2048)
for (let i = 0; i < bigIds.length; i++) bigIds[i] = 1 + (((i * 2654435761) >>> 0) % 31999)
await pplRow('TinyLlama-1.1B shape, BF16, first 2,048 tokens', big, bigIds, 8)
