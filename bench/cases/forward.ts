// The forward pass: matmul GFLOP/s (TS twin vs WASM SIMD on 1 thread and on 2 workers), and perplexity
// tokens/s on the real stories260K (1 thread and 2 workers) and on a synthetic TinyLlama-1.1B-shape model in F16 (first 2,048 tokens
// at seqlen 256), each with peak RSS. With LLAMACPP_BIN set to a llama.cpp build folder, llama-perplexity
// runs the same model (Whittle's own F16 GGUF of it) with the same seqlen, windows and threads, in turn with
// Whittle's run (BENCH_ROUNDS rounds, default 1), and the tokens/s ratio is printed (issue #15: ≥ 1.0×).

import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { attentionCausal, attentionScratch } from '../../kernels/reference/attention'
import { matmulNT } from '../../kernels/reference/matmul'
import { perplexity } from '../../src-main/engine/eval/perplexity'
import { readTextFile, tokenizeForEval } from '../../src-main/engine/eval/tokenize-text'
import { attention, matmul } from '../../src-main/engine/forward/parallel-ops'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import type { KernelVariant } from '../../kernels/host/load'
import { f16GgufWithTokenizer, llamaPerplexity } from '../llama-perplexity'
import { MODELS_DIR, syntheticModel } from '../models'
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
const KERNEL_LABEL: Record<KernelVariant, string> = {
  exact: 'WASM SIMD',
  fused: 'WASM relaxed SIMD (fused multiply-add)',
}
for (const kernels of ['exact', 'fused'] as const) {
  for (const threads of [0, 2]) {
    const pool = await WorkerPool.create({ threads, kernels })
    if (pool.kernelVariant !== kernels) {
      await pool.close()
      break // this runtime cannot run the relaxed build
    }
    const xr = pool.arena.alloc(x.byteLength),
      wr = pool.arena.alloc(w.byteLength),
      yr = pool.arena.alloc(T * N * 4)
    pool.arena.f32(xr).set(x)
    pool.arena.f32(wr).set(w)
    const s = await bestOf(5, () => matmul(pool, xr.ptr, wr.ptr, yr.ptr, T, K, N))
    await pool.close()
    emit({
      case: label,
      variant: `${KERNEL_LABEL[kernels]}, ${threads === 0 ? '1 thread' : `${threads} workers`}`,
      measure: 'GFLOP/s',
      value: (flops / s / 1e9).toFixed(2),
      ratio: `${(tsSeconds / s).toFixed(1)}x`,
    })
  }
}

// --- causal attention, one layer of one window at seqlen 256 on 1 thread: head dim 8 (stories260K, where
// latency-bound chains set the speed), 64 with grouped KV (TinyLlama-1.1B) and 128 (Llama-7B).
const ATTENTION_SHAPES: [string, number, number, number][] = [
  ['stories260K shape, 8 heads × 8', 8, 8, 8],
  ['TinyLlama-1.1B shape, 32 heads × 64, 4 KV heads', 32, 4, 64],
  ['Llama-7B shape, 32 heads × 128', 32, 32, 128],
]
{
  const AT = 256
  const pool = await WorkerPool.create({ threads: 0 })
  for (const [name, nHeads, nKV, headDim] of ATTENTION_SHAPES) {
    const q = Float32Array.from({ length: AT * nHeads * headDim }, (_, i) => Math.sin(i * 0.37) * 2)
    const k = Float32Array.from({ length: AT * nKV * headDim }, (_, i) => Math.cos(i * 0.11) * 2)
    const v = Float32Array.from({ length: AT * nKV * headDim }, (_, i) => Math.sin(i * 0.05 + 1))
    const twinSeconds = await bestOf(1, () =>
      attentionCausal(
        q,
        k,
        v,
        new Float32Array(q.length),
        new Float32Array(attentionScratch(AT)),
        AT,
        nHeads,
        nKV,
        headDim,
      ),
    )
    const [qr, kr, vr] = [q, k, v].map((a) => {
      const r = pool.arena.alloc(a.byteLength)
      pool.arena.f32(r).set(a)
      return r
    })
    const outr = pool.arena.alloc(q.byteLength),
      scratchr = pool.arena.alloc(attentionScratch(AT) * 4)
    const s = await bestOf(20, () =>
      attention(pool, qr.ptr, kr.ptr, vr.ptr, outr.ptr, () => scratchr.ptr, AT, nHeads, nKV, headDim),
    )
    for (const r of [qr, kr, vr, outr, scratchr]) pool.arena.release(r)
    emit({
      case: `attention_causal, ${name}, T = ${AT}`,
      variant: 'WASM SIMD, 1 thread',
      measure: 'ms per layer',
      value: `${(s * 1e3).toFixed(3)} ms (${Math.round(AT / s).toLocaleString('en')} tok/s)`,
      ratio: `${(twinSeconds / s).toFixed(1)}x the TS twin, load ${os.loadavg()[0].toFixed(1)}`,
    })
  }
  await pool.close()
}

// --- perplexity throughput
const SEQLEN = 256,
  THREADS = 2

/** Tokens per CPU-second (every thread of the process): less disturbed than wall time on a shared machine. */
const perCpuSecond = (tokens: number, cpuSeconds: number): string =>
  `${(tokens / cpuSeconds).toFixed(tokens / cpuSeconds < 100 ? 2 : 0)} tok/CPU-s`

interface PplRun {
  kernels?: KernelVariant
  /** Worker threads; default THREADS (0: the kernels run on the main thread). */
  threads?: number
  /** Windows per forward call; default the forward pass's own (windowsPerBatch). */
  batch?: number
  label?: string
}

async function pplRow(name: string, modelPath: string, ids: Int32Array, maxWindows?: number, run: PplRun = {}) {
  const threads = run.threads ?? THREADS
  const pool = await WorkerPool.create({ threads, kernels: run.kernels })
  const model = await loadModel(modelPath)
  const cpu0 = process.cpuUsage()
  const r = await perplexity(pool, model, ids, { seqlen: SEQLEN, maxWindows, batch: run.batch })
  const cpu = process.cpuUsage(cpu0)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  const variant = `${KERNEL_LABEL[pool.kernelVariant]}, ${threads === 0 ? '1 thread' : `${threads} workers`}, seqlen ${SEQLEN}${run.label ?? ''}`
  await pool.close()
  emit({
    case: `perplexity, ${name}`,
    variant,
    measure: 'tokens/s',
    value: `${r.tokens_per_second.toFixed(r.tokens_per_second < 100 ? 1 : 0)} tok/s`,
    ratio: `${r.windows} windows, ${r.seconds.toFixed(1)} s, ${perCpuSecond(r.tokens_evaluated, cpuSeconds)}, ppl ${r.ppl.toFixed(4)}, load ${os.loadavg()[0].toFixed(1)}`,
    peakRss: peakRss(),
  })
  return r.tokens_per_second
}

if (!process.env.BENCH_SKIP_DEMO) {
  const demo = path.join(repo, 'resources/demo/stories260K')
  const demoIds = await tokenizeForEval(
    (await loadModel(demo)).files,
    await readTextFile(path.join(repo, 'resources/text/tinystories_eval.txt')),
  )
  // 1 thread too: stories260K's attention (head dim 8) is a large share of its forward pass (issue #15).
  for (const kernels of ['exact', 'fused'] as const)
    for (const threads of [0, THREADS])
      await pplRow('stories260K, bundled TinyStories eval (all 1,154 windows)', demo, demoIds, undefined, {
        kernels,
        threads,
      })
}

const WINDOWS = 8
const big = await syntheticModel('tinyllama-1.1b', 'F16')
const bigIds = new Int32Array(WINDOWS * SEQLEN)
for (let i = 0; i < bigIds.length; i++) bigIds[i] = 1 + (((i * 2654435761) >>> 0) % 31999)
const bigName = `TinyLlama-1.1B shape, F16, first ${bigIds.length.toLocaleString('en')} tokens`
const bin = process.env.LLAMACPP_BIN
const gguf = bin ? await f16GgufWithTokenizer(big, 32000) : null
// llama-perplexity tokenizes the whole file before it starts; 64 KB is well over 2,048 tokens.
const text = path.join(MODELS_DIR, 'llama-perplexity-text-64k.txt')
writeFileSync(text, readFileSync(path.join(repo, 'resources/text/tinystories_eval.txt')).subarray(0, 65536))
// One layer load per 7 windows (the activation budget), as before windowsPerBatch: the same kernels, to
// show what loading each layer once per batch saves.
const OLD_BATCH = 7
for (let round = 0; round < Number(process.env.BENCH_ROUNDS ?? 1); round++) {
  await pplRow(bigName, big, bigIds, WINDOWS, { batch: OLD_BATCH, label: `, ${OLD_BATCH} windows per batch` })
  const whittle = await pplRow(bigName, big, bigIds, WINDOWS, { kernels: 'fused' })
  if (bin && gguf) {
    const l = llamaPerplexity(bin, gguf, text, SEQLEN, WINDOWS, THREADS)
    emit({
      case: `perplexity, ${bigName}`,
      variant: `llama-perplexity (F16 GGUF), ${THREADS} threads, -c ${SEQLEN} -b ${SEQLEN}`,
      measure: 'tokens/s',
      value: `${l.tokensPerSecond.toFixed(1)} tok/s`,
      ratio: `Whittle (fused) ${(whittle / l.tokensPerSecond).toFixed(2)}x; ${l.tokens} tokens, ${l.wallSeconds.toFixed(1)} s whole process, ${perCpuSecond(l.tokens, l.cpuSeconds)} (whole process), load ${os.loadavg()[0].toFixed(1)}`,
    })
  } else {
    emit({
      case: `perplexity, ${bigName}`,
      variant: `llama-perplexity, ${THREADS} threads (issue #15's published anchor)`,
      measure: 'tokens/s',
      value: '64 tok/s',
      ratio: `Whittle (fused) ${(whittle / 64).toFixed(2)}x (set LLAMACPP_BIN to measure side by side)`,
    })
  }
  // The exact kernels with one layer load per batch: separates the two changes' shares.
  await pplRow(bigName, big, bigIds, WINDOWS)
}
