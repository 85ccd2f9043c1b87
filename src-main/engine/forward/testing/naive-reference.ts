// Test support for the forward-pass tests: tiny random checkpoints written with the project's safetensors
// writer, and a naive f64 toolkit (Linear, LayerNorm, causal softmax attention, activations, NLL) written
// from the PyTorch / Hugging Face definitions. It never calls the kernels or the engine's forward code, so
// a test comparing the two compares independent computations.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect } from 'vitest'
import type { InputGroup } from '../../../contract/api'
import type { LayerStats } from '../../calibration/capture'
import { loadModel } from '../../model/loaded-model'
import { writeSafetensors } from '../../formats/safetensors-writer'
import { WorkerPool } from '../../pool/worker-pool'
import { NormalStream } from '../../synthetic/random'
import { createForward } from '..'
import type { CausalLM } from '../causal-lm'

/** Random tensors of a tiny model: each kept as f32 (what the file holds) and read back as f64. */
export class TinyWeights {
  private readonly rng: NormalStream
  readonly tensors = new Map<string, { shape: number[]; values: Float32Array }>()

  constructor(seed: number) {
    this.rng = new NormalStream(seed)
  }

  /** A tensor of N(mean, std²) values, stored under `name`; returns the values as f64. */
  add(name: string, shape: number[], std: number, mean = 0): Float64Array {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1))
    this.rng.fill(values, std)
    for (let i = 0; i < values.length; i++) values[i] += mean
    this.tensors.set(name, { shape, values })
    return Float64Array.from(values)
  }

  /** A LayerNorm's weight near 1 and bias near 0 (both far enough from the identity to matter). */
  norm(prefix: string, H: number): { w: Float64Array; b: Float64Array } {
    return { w: this.add(`${prefix}.weight`, [H], 0.2, 1), b: this.add(`${prefix}.bias`, [H], 0.2) }
  }

  /** Writes model.safetensors and config.json into `dir`; returns the folder. */
  async write(dir: string, config: Record<string, unknown>): Promise<string> {
    await mkdir(dir, { recursive: true })
    await writeSafetensors(
      path.join(dir, 'model.safetensors'),
      [...this.tensors].map(([name, t]) => ({
        name,
        dtype: 'F32' as const,
        shape: t.shape,
        data: new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength),
      })),
    )
    await writeFile(path.join(dir, 'config.json'), JSON.stringify(config))
    return dir
  }
}

/** Random token windows. */
export function randomWindows(count: number, T: number, vocab: number, seed: number): Int32Array[] {
  const rng = new NormalStream(seed)
  return Array.from({ length: count }, () => Int32Array.from({ length: T }, () => rng.nextInt(vocab)))
}

/** y[n, out] = x[n, in] · Wᵀ + b for a torch.nn.Linear weight W [out, in]. */
export function linear(
  x: Float64Array,
  W: Float64Array,
  b: Float64Array | null,
  inDim: number,
  outDim: number,
): Float64Array {
  const n = x.length / inDim
  const y = new Float64Array(n * outDim)
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o] : 0
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W[o * inDim + i]
      y[r * outDim + o] = s
    }
  }
  return y
}

/** torch.nn.LayerNorm over rows of width H (biased variance). */
export function layerNorm(x: Float64Array, H: number, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(x.length)
  for (let r = 0; r < x.length / H; r++) {
    let mean = 0
    for (let i = 0; i < H; i++) mean += x[r * H + i]
    mean /= H
    let variance = 0
    for (let i = 0; i < H; i++) variance += (x[r * H + i] - mean) ** 2
    variance /= H
    const inv = 1 / Math.sqrt(variance + eps)
    for (let i = 0; i < H; i++) y[r * H + i] = (x[r * H + i] - mean) * inv * w[i] + b[i]
  }
  return y
}

export function add(a: Float64Array, ...rest: Float64Array[]): Float64Array {
  const y = Float64Array.from(a)
  for (const b of rest) for (let i = 0; i < y.length; i++) y[i] += b[i]
  return y
}

/**
 * softmax(q kᵀ / √hd + causal mask) v for one window; q, k, v and the result are [T, heads·hd]
 * with head h in columns [h·hd, (h+1)·hd).
 */
export function causalAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  T: number,
  heads: number,
  hd: number,
): Float64Array {
  const W = heads * hd
  const out = new Float64Array(T * W)
  const p = new Float64Array(T)
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < T; i++) {
      let max = -Infinity
      for (let j = 0; j <= i; j++) {
        let s = 0
        for (let d = 0; d < hd; d++) s += q[i * W + h * hd + d] * k[j * W + h * hd + d]
        p[j] = s / Math.sqrt(hd)
        max = Math.max(max, p[j])
      }
      let sum = 0
      for (let j = 0; j <= i; j++) sum += p[j] = Math.exp(p[j] - max)
      for (let d = 0; d < hd; d++) {
        let s = 0
        for (let j = 0; j <= i; j++) s += p[j] * v[j * W + h * hd + d]
        out[i * W + h * hd + d] = s / sum
      }
    }
  }
  return out
}

/** erf by its Maclaurin series (|x| < 4; beyond, erf = ±1 to better than 2e-8). */
export function erf(x: number): number {
  if (Math.abs(x) >= 4) return Math.sign(x)
  let term = x,
    sum = x
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n
    const next = term / (2 * n + 1)
    sum += next
    if (Math.abs(next) < 1e-17 * Math.abs(sum)) break
  }
  return (2 / Math.sqrt(Math.PI)) * sum
}

export const ACTIVATIONS: Record<'gelu' | 'gelu_new' | 'relu', (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  relu: (x) => Math.max(0, x),
}

export function map(x: Float64Array, f: (v: number) => number): Float64Array {
  return x.map(f)
}

/** Rows [t0, t0 + n) of a [rows, width] matrix. */
export function rows(x: Float64Array, width: number, t0: number, n: number): Float64Array {
  return x.slice(t0 * width, (t0 + n) * width)
}

/** Columns [c0, c0 + n) of a [rows, width] matrix. */
export function columns(x: Float64Array, width: number, c0: number, n: number): Float64Array {
  const r = x.length / width
  const y = new Float64Array(r * n)
  for (let i = 0; i < r; i++) for (let c = 0; c < n; c++) y[i * n + c] = x[i * width + c0 + c]
  return y
}

/** −log softmax(logits[t])[tokens[t + 1]] for t < T − 1; logits [T, V]. */
export function nextTokenNll(logits: Float64Array, tokens: Int32Array, V: number): number[] {
  const out: number[] = []
  for (let t = 0; t + 1 < tokens.length; t++) {
    let max = -Infinity
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v])
    let sum = 0
    for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v] - max)
    out.push(Math.log(sum) + max - logits[t * V + tokens[t + 1]])
  }
  return out
}

/** Every per-token NLL within `rel` (relative, floored at 1) of the naive one. */
export function expectNllClose(actual: Float64Array[], expected: number[][], rel = 1e-4): void {
  expect(actual.length).toBe(expected.length)
  for (const [w, row] of expected.entries()) {
    expect(actual[w].length).toBe(row.length)
    for (const [t, e] of row.entries()) {
      const a = actual[w][t]
      if (!(Math.abs(a - e) <= rel * Math.max(1, Math.abs(e)))) {
        throw new Error(`window ${w}, token ${t}: NLL ${a} differs from the naive ${e} by more than ${rel} relative`)
      }
    }
  }
}

/** The largest relative difference between two sets of per-token NLLs (to show a variant really differs). */
export function largestNllGap(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let gap = 0
  for (let w = 0; w < a.length; w++) {
    for (let t = 0; t < a[w].length; t++)
      gap = Math.max(gap, Math.abs(a[w][t] - b[w][t]) / Math.max(1, Math.abs(b[w][t])))
  }
  return gap
}

/** Arrays equal to `rel` relative to the largest magnitude in `expected`. */
export function expectArrayClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rel: number,
  what: string,
): void {
  expect(actual.length, what).toBe(expected.length)
  let scale = 1e-30
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]))
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= rel * scale))
      throw new Error(`${what}[${i}] = ${actual[i]}, expected ${expected[i]}`)
  }
}

/** What the naive models record: per `${layer}:${role}`, the Linear's input over all windows (window-major). */
export type RecordedInputs = Map<string, Float64Array[]>

export function record(inputs: RecordedInputs | undefined, layer: number, role: string, x: Float64Array): void {
  if (!inputs) return
  const key = `${layer}:${role}`
  inputs.set(key, [...(inputs.get(key) ?? []), x])
}

export function concat(parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p as ArrayLike<number>, o)
    o += p.length
  }
  return out
}

/** Runs the forward pass with hooks that copy every Linear input, keyed `${layer}:${role}` like record(). */
export async function runRecorded(
  forward: CausalLM,
  windows: Int32Array[],
): Promise<{ nll: Float64Array[]; inputs: Map<string, Float32Array[]>; roles: string[][] }> {
  const inputs = new Map<string, Float32Array[]>()
  const roles: string[][] = Array.from({ length: forward.arch.layers }, () => [])
  const nll = await forward.windowNll(windows, {
    hooks: {
      linearInput(layer, role, x, M, K) {
        expect(x.length).toBe(M * K)
        if (!roles[layer].includes(role)) roles[layer].push(role)
        const key = `${layer}:${role}`
        inputs.set(key, [...(inputs.get(key) ?? []), x.slice()])
      },
    },
  })
  return { nll, inputs, roles }
}

/** Each recorded Linear input of the forward pass equals the naive one. */
export function expectInputsClose(actual: Map<string, Float32Array[]>, expected: RecordedInputs, rel = 1e-4): void {
  for (const [key, parts] of expected) {
    const got = actual.get(key)
    if (!got) throw new Error(`the forward pass reported no input for ${key}`)
    expectArrayClose(concat(got), concat(parts), rel, key)
  }
}

/** A worker pool and a scratch folder for one test file's tiny models, made before and removed after its tests. */
export function tinyModelBench(prefix: string): { readonly pool: WorkerPool; readonly dir: string } {
  const bench = { pool: null as WorkerPool | null, dir: '' }
  beforeAll(async () => {
    bench.pool = await WorkerPool.create({ threads: 2 })
    bench.dir = await mkdtemp(path.join(tmpdir(), prefix))
  })
  afterAll(async () => {
    await bench.pool?.close()
    if (bench.dir) await rm(bench.dir, { recursive: true, force: true })
  })
  return {
    get pool(): WorkerPool {
      return bench.pool!
    },
    get dir(): string {
      return bench.dir
    },
  }
}

/**
 * Per layer and input group, a calibration statistic of the capture against the same statistic of the
 * naive model's recorded inputs (`roleOf` names the role recorded for each group).
 */
export function expectCaptureMatches(
  layers: (LayerStats | null)[],
  expected: RecordedInputs,
  roleOf: Record<InputGroup, string>,
  statistic: 'absmax' | 'sumSq',
  tokens: number,
): void {
  for (const [l, stats] of layers.entries()) {
    for (const [group, role] of Object.entries(roleOf) as [InputGroup, string][]) {
      const s = stats![group]
      const x = concat(expected.get(`${l}:${role}`)!)
      const K = s.channels
      expect(s.tokens).toBe(tokens)
      const want = new Float64Array(K)
      for (let i = 0; i < x.length; i++)
        want[i % K] = statistic === 'absmax' ? Math.max(want[i % K], Math.abs(x[i])) : want[i % K] + x[i] * x[i]
      expectArrayClose(s[statistic], want, 1e-4, `layer ${l} ${group} ${statistic}`)
    }
  }
}

/** Writes a tiny model into the bench's folder, opens it, and runs `use` on its forward pass (closed after). */
export async function withTinyForward<R>(
  bench: { readonly pool: WorkerPool; readonly dir: string },
  name: string,
  weights: TinyWeights,
  config: Record<string, unknown>,
  use: (forward: CausalLM) => Promise<R>,
): Promise<R> {
  const model = await loadModel(await weights.write(path.join(bench.dir, name), config))
  const forward = await createForward(bench.pool, model)
  try {
    return await use(forward)
  } finally {
    forward.close()
  }
}

/**
 * The forward pass's per-token NLLs, and every Linear input its hooks report, equal the naive model's;
 * every layer reports exactly `roles`, in that order. Returns the naive NLLs.
 */
export async function expectMatchesNaive(
  forward: CausalLM,
  windows: Int32Array[],
  naive: (inputs: RecordedInputs) => number[][],
  roles: string[],
): Promise<number[][]> {
  const expectedInputs: RecordedInputs = new Map()
  const expected = naive(expectedInputs)
  const run = await runRecorded(forward, windows)
  expectNllClose(run.nll, expected)
  for (const seen of run.roles) expect(seen).toEqual(roles)
  expectInputsClose(run.inputs, expectedInputs)
  return expected
}
