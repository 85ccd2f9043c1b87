import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { InputGroup, TensorRole } from '../../../contract/api'
import { accumulateInput, emptyInputStats, type InputStats } from '../../calibration/capture'
import { perplexity } from '../../eval/perplexity'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { NormalStream } from '../../synthetic/random'
import { hasShared, referenceIds, referenceRun, shared, SKIP_SHARED } from '../../testing/shared-data'
import { runRecipe } from '../pipeline'
import { validateRecipe } from '../recipe/recipe'
import { awq, awqScaleLayer, awqScales, SampleProjection, searchScale, type AwqParams } from './awq'
import type { GroupContext, LayerContext, LinearToCompress } from './method'
import { rtnQuantize } from './rtn'
import { referenceCalibrationWindows } from '../../calibration/testing/reference-windows'

const f = Math.fround
type Sampled = InputStats & { sample: Float32Array; sampleRows: number }

function normals(n: number, seed: number, scale = 1): Float32Array {
  const rng = new NormalStream(seed)
  return Float32Array.from({ length: n }, () => rng.next() * scale)
}

/** n calibration rows of width K, with some channels louder than the rest. */
function activations(n: number, K: number, seed: number, loud: Record<number, number> = {}): Float32Array {
  const X = normals(n * K, seed)
  for (const [c, gain] of Object.entries(loud)) for (let t = 0; t < n; t++) X[t * K + Number(c)] *= gain
  return X
}

function stats(X: Float32Array, n: number, K: number): Sampled {
  const s = emptyInputStats(K, false)
  accumulateInput(s, X, n, K)
  return { ...s, windows: 1, sample: X, sampleRows: n }
}

const GROUP_OF: Partial<Record<TensorRole, InputGroup>> = {
  q: 'qkv',
  k: 'qkv',
  v: 'qkv',
  o: 'o',
  gate: 'gate_up',
  up: 'gate_up',
  down: 'down',
}

interface Layer {
  ctx: LayerContext<AwqParams>
  /** The layer's tensors as the model view would hold them after writes (targeted ones too, as given). */
  tensors: Map<TensorRole, Float32Array>
  writes: TensorRole[]
  original: Map<TensorRole, Float32Array>
}

/**
 * A hand-made decoder layer. `shapes` gives [rows, cols] of every Linear present; `targeted` the ones
 * the step compresses; inputs per group are made up (their statistics are all AWQ looks at).
 */
function makeLayer(
  pool: WorkerPool,
  shapes: Partial<Record<TensorRole, [number, number]>>,
  targeted: TensorRole[],
  inputs: Partial<Record<InputGroup, Sampled>>,
  params: Partial<AwqParams> = {},
  norms = true,
): Layer {
  const tensors = new Map<TensorRole, Float32Array>()
  let seed = 100
  for (const [role, [rows, cols]] of Object.entries(shapes) as [TensorRole, [number, number]][])
    tensors.set(role, normals(rows * cols, seed++, 0.1))
  const hidden = shapes.q![1]
  if (norms) {
    tensors.set(
      'attn_norm',
      Float32Array.from(normals(hidden, 7), (v) => f(1 + 0.3 * v)),
    )
    tensors.set(
      'ffn_norm',
      Float32Array.from(normals(hidden, 8), (v) => f(1 + 0.3 * v)),
    )
  }
  const original = new Map([...tensors].map(([k, v]) => [k, v.slice()]))
  const p: AwqParams = { ...awq.parseParams({ scale_dtype: 'f32' }, 'test'), ...params }
  const byGroup = new Map<InputGroup, LinearToCompress<AwqParams>[]>()
  for (const role of targeted) {
    const [rows, cols] = shapes[role]!
    const g = GROUP_OF[role]!
    if (!byGroup.has(g)) byGroup.set(g, [])
    byGroup.get(g)!.push({
      name: `layers.0.${role}_proj.weight`,
      role,
      layer: 0,
      rows,
      cols,
      weight: tensors.get(role)!.slice(),
      params: p,
    })
  }
  const groups: GroupContext<AwqParams>[] = [...byGroup].map(([group, linears]) => ({
    layer: 0,
    group,
    linears,
    input: inputs[group] ?? null,
    pool,
  }))
  const writes: TensorRole[] = []
  const ctx: LayerContext<AwqParams> = {
    layer: 0,
    groups,
    pool,
    read: async (role) => tensors.get(role)?.slice() ?? null,
    write: (role, values) => {
      writes.push(role)
      tensors.set(role, values)
    },
  }
  return { ctx, tensors, writes, original }
}

/** y [n, rows] = X [n, K] · Wᵀ in f64. */
function project(X: Float32Array, n: number, W: Float32Array, rows: number, K: number): Float64Array {
  const y = new Float64Array(n * rows)
  for (let t = 0; t < n; t++)
    for (let r = 0; r < rows; r++) {
      let acc = 0
      for (let c = 0; c < K; c++) acc += X[t * K + c] * W[r * K + c]
      y[t * rows + r] = acc
    }
  return y
}

function scaleRowsBy(X: Float32Array, K: number, by: (c: number) => number): Float32Array {
  return X.map((v, i) => v * by(i % K))
}

function maxRelDiff(a: Float64Array, b: Float64Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(a[i]))
  }
  return num / den
}

const silu = (v: number): number => v / (1 + Math.exp(-v))

let pool: WorkerPool
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
})
afterAll(() => pool?.close())

describe('AWQ scales', () => {
  it('s = mean|x|^α clamped at 1e-4, normalised so that max(s) · min(s) = 1', () => {
    const mean = [4, 1, 0.25, 0, 9]
    const s = awqScales(mean, 0.5)
    const raw = [2, 1, 0.5, 1e-4, 3]
    const norm = Math.sqrt(3 * 1e-4)
    raw.forEach((v, i) => expect(s[i]).toBeCloseTo(v / norm, 3))
    expect(Math.max(...s) * Math.min(...s)).toBeCloseTo(1, 5)
    expect(Array.from(awqScales(mean, 0))).toEqual([1, 1, 1, 1, 1])
  })

  it('parses defaults (w4 g128 asym, grid 20) and names the step in errors', () => {
    expect(awq.parseParams({}, 's')).toEqual({ bits: 4, groupSize: 128, sym: false, scaleDtype: 'f16', grid: 20 })
    expect(() => awq.parseParams({ grid: 0 }, 'recipe step 1 (awq)')).toThrow(/step 1 \(awq\): params.grid/)
    expect(() => awq.parseParams({ alpha: 0.5 }, 's')).toThrow(/alpha is not a parameter/)
    expect(awq.predict(awq.parseParams({ group_size: 32 }, 's'), 64, 64).bitsPerWeight).toBe(4 + 20 / 32)
  })
})

describe('the sampled output error', () => {
  it('is Σ (x · E_r)² over samples and rows, also when E goes to the kernels in several chunks', async () => {
    // Wide rows force chunks of 2^22 / 2^15 = 128 rows: 150 rows take two.
    const n = 8,
      K = 1 << 15,
      rows = 150
    const X = normals(n * K, 11),
      E = normals(rows * K, 12, 0.01)
    const projection = SampleProjection.create(pool, X, n, K, rows)
    try {
      const got = await projection.sumSquares(E, rows)
      const y = project(X, n, E, rows, K)
      const expected = y.reduce((a, v) => a + v * v, 0)
      expect(got / expected).toBeCloseTo(1, 4)
    } finally {
      projection.free()
    }
  })
})

describe('AWQ on a synthetic layer', () => {
  const n = 256,
    K = 64
  const mha = {
    q: [64, 64],
    k: [64, 64],
    v: [64, 64],
    o: [64, 64],
    gate: [96, 64],
    up: [96, 64],
    down: [64, 96],
  } as Partial<Record<TensorRole, [number, number]>>
  const inputs = {
    qkv: stats(activations(n, K, 1, { 3: 40, 17: 15 }), n, K),
    o: stats(activations(n, K, 2, { 5: 20 }), n, K),
    gate_up: stats(activations(n, K, 3, { 9: 30 }), n, K),
    down: stats(activations(n, 96, 4, { 50: 25 }), n, 96),
  }

  it('beats plain RTN on the sampled outputs when one input channel is loud', async () => {
    const layer = makeLayer(pool, mha, ['q', 'k', 'v'], inputs, { groupSize: 32 })
    const outcomes = await awq.compressLayer!(layer.ctx)
    const X = inputs.qkv.sample
    let awqErr = 0,
      rtnErr = 0
    for (const role of ['q', 'k', 'v'] as const) {
      const W = layer.original.get(role)!
      const l = layer.ctx.groups[0].linears.find((x) => x.role === role)!
      const o = outcomes.find((x) => x.name === l.name)!
      const s = o.inputScale!
      const exact = project(X, n, W, 64, K)
      const mine = project(
        scaleRowsBy(X, K, (c) => 1 / s[c]),
        n,
        l.weight,
        64,
        K,
      )
      const R = W.slice()
      rtnQuantize(R, 64, K, { bits: 4, groupSize: 32, sym: false })
      const plain = project(X, n, R, 64, K)
      for (let i = 0; i < exact.length; i++) {
        awqErr += (exact[i] - mine[i]) ** 2
        rtnErr += (exact[i] - plain[i]) ** 2
      }
    }
    console.log(
      `synthetic qkv: AWQ ${outcomes[0].note}, output error AWQ ${awqErr.toExponential(3)} vs RTN ${rtnErr.toExponential(3)}`,
    )
    expect(awqErr).toBeLessThan(0.8 * rtnErr)
    expect(outcomes[0].bitsPerWeight).toBe(4 + 20 / 32)
  })

  it('measures α = 0 exactly as RTN’s output error on the sample', async () => {
    const layer = makeLayer(pool, mha, ['gate', 'up'], inputs, { groupSize: 32 })
    const linears = layer.ctx.groups[0].linears
    const search = await searchScale(pool, linears, inputs.gate_up, 4)
    let rtnErr = 0
    for (const l of linears) {
      const R = l.weight.slice()
      rtnQuantize(R, l.rows, K, l.params)
      const a = project(inputs.gate_up.sample, n, l.weight, l.rows, K),
        b = project(inputs.gate_up.sample, n, R, l.rows, K)
      for (let i = 0; i < a.length; i++) rtnErr += (a[i] - b[i]) ** 2
    }
    expect(search.losses).toHaveLength(4)
    expect(search.losses[0] / (rtnErr / n)).toBeCloseTo(1, 4)
    expect(search.alpha).toBe(search.losses.indexOf(Math.min(...search.losses)) / 4)
  })

  it('folding leaves the float layer unchanged: norms, q/k/v, v→o and up→down (MHA)', async () => {
    const layer = makeLayer(pool, mha, ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], inputs, { groupSize: 32 })
    const scalings = await awqScaleLayer(layer.ctx)
    const weight = (role: TensorRole): Float32Array =>
      layer.ctx.groups.flatMap((g) => g.linears).find((l) => l.role === role)!.weight
    for (const sc of scalings) expect(sc.scale, sc.note).not.toBeNull()
    const s = (g: InputGroup): Float32Array => scalings.find((x) => x.group.group === g)!.scale!
    // The norms were divided by s, in f32.
    expect(layer.tensors.get('attn_norm')).toEqual(layer.original.get('attn_norm')!.map((v, j) => f(v / s('qkv')[j])))
    expect(layer.tensors.get('ffn_norm')).toEqual(layer.original.get('ffn_norm')!.map((v, j) => f(v / s('gate_up')[j])))
    const u = activations(32, K, 9) // normalised hidden states, before the norm's weight
    const before = (norm: TensorRole): Float32Array => scaleRowsBy(u, K, (c) => layer.original.get(norm)![c])
    const after = (norm: TensorRole): Float32Array => scaleRowsBy(u, K, (c) => layer.tensors.get(norm)![c])
    for (const role of ['q', 'k'] as const) {
      expect(
        maxRelDiff(
          project(before('attn_norm'), 32, layer.original.get(role)!, 64, K),
          project(after('attn_norm'), 32, weight(role), 64, K),
        ),
      ).toBeLessThan(1e-5)
    }
    // v's output channels now come out divided by o's scale…
    const vBefore = project(before('attn_norm'), 32, layer.original.get('v')!, 64, K)
    const vAfter = project(after('attn_norm'), 32, weight('v'), 64, K)
    expect(
      maxRelDiff(
        vBefore,
        vAfter.map((v, i) => v * s('o')[i % 64]),
      ),
    ).toBeLessThan(1e-5)
    // …and o, reading them, gives what it gave (attention mixes tokens, never channels, so the
    // per-channel scale passes through it).
    expect(
      maxRelDiff(
        project(Float32Array.from(vBefore), 32, layer.original.get('o')!, 64, K),
        project(Float32Array.from(vAfter), 32, weight('o'), 64, K),
      ),
    ).toBeLessThan(1e-5)
    // The gated MLP: down(silu(gate x) ⊙ up x).
    const mlp = (x: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array): Float64Array => {
      const g = project(x, 32, gate, 96, K),
        v = project(x, 32, up, 96, K)
      return project(
        Float32Array.from(g, (a, i) => silu(a) * v[i]),
        32,
        down,
        64,
        96,
      )
    }
    expect(
      maxRelDiff(
        mlp(before('ffn_norm'), layer.original.get('gate')!, layer.original.get('up')!, layer.original.get('down')!),
        mlp(after('ffn_norm'), weight('gate'), weight('up'), weight('down')),
      ),
    ).toBeLessThan(1e-5)
    // (X/s)(W·s)ᵀ = XWᵀ for the down group's own sample.
    const Xd = inputs.down.sample
    expect(
      maxRelDiff(
        project(Xd, n, layer.original.get('down')!, 64, 96),
        project(
          scaleRowsBy(Xd, 96, (c) => 1 / s('down')[c]),
          n,
          weight('down'),
          64,
          96,
        ),
      ),
    ).toBeLessThan(1e-5)
  })

  it('then quantizes W·s with RTN groups and reports s and α', async () => {
    const layer = makeLayer(pool, mha, ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], inputs, { groupSize: 32 })
    const outcomes = await awq.compressLayer!(layer.ctx)
    expect(outcomes).toHaveLength(7)
    const down = layer.ctx.groups.find((g) => g.group === 'down')!.linears[0]
    const o = outcomes.find((x) => x.name === down.name)!
    expect(o.note).toMatch(/^AWQ α=0\.\d\d$/)
    const expected = layer.original.get('down')!.map((v, i) => f(v * o.inputScale![i % 96]))
    rtnQuantize(expected, 64, 96, { bits: 4, groupSize: 32, sym: false })
    expect(down.weight).toEqual(expected)
    expect(outcomes.find((x) => x.name.includes('up_proj'))!.note).toMatch(/rows divided by the down group's scale/)
    expect(layer.writes.sort()).toEqual(['attn_norm', 'ffn_norm'])
  })

  it('with grouped-query attention leaves o unscaled, as the reference', async () => {
    const gqa = { ...mha, k: [32, 64], v: [32, 64] } as Partial<Record<TensorRole, [number, number]>>
    const layer = makeLayer(pool, gqa, ['q', 'k', 'v', 'o'], inputs, { groupSize: 32 })
    const outcomes = await awq.compressLayer!(layer.ctx)
    const o = outcomes.find((x) => x.name.includes('o_proj'))!
    expect(o.inputScale).toBeUndefined()
    expect(o.note).toMatch(/not scaled \(grouped-query attention: v_proj's output width 32 ≠ o_proj's input 64/)
    const expected = layer.original.get('o')!.slice()
    rtnQuantize(expected, 64, 64, { bits: 4, groupSize: 32, sym: false })
    expect(layer.ctx.groups.find((g) => g.group === 'o')!.linears[0].weight).toEqual(expected)
  })

  it('scales the Linears it does not quantize when they share the folded norm', async () => {
    const layer = makeLayer(pool, mha, ['q'], inputs, { groupSize: 32 })
    const [outcome] = await awq.compressLayer!(layer.ctx)
    const s = outcome.inputScale!
    expect(layer.writes.sort()).toEqual(['attn_norm', 'k', 'v'])
    for (const role of ['k', 'v'] as const)
      expect(layer.tensors.get(role)).toEqual(layer.original.get(role)!.map((v, i) => f(v * s[i % K])))
  })

  it('skips scaling with a note where there is no producer to fold into', async () => {
    // No gate_proj: a LayerNorm family, whose norm bias the layer context cannot reach.
    const plain = { q: [64, 64], k: [64, 64], v: [64, 64], down: [64, 96] } as Partial<
      Record<TensorRole, [number, number]>
    >
    const layer = makeLayer(pool, plain, ['q', 'down'], inputs, { groupSize: 32 })
    const outcomes = await awq.compressLayer!(layer.ctx)
    expect(outcomes[0].note).toMatch(/not scaled \(.*not an RMSNorm/)
    expect(outcomes[1].note).toMatch(/not scaled \(no up_proj/)
    expect(outcomes.every((o) => o.inputScale === undefined)).toBe(true)
    expect(layer.writes).toEqual([])
  })

  it('needs calibration inputs', async () => {
    const layer = makeLayer(pool, mha, ['q'], {}, {})
    await expect(awq.compressLayer!(layer.ctx)).rejects.toThrow(/awq: layer 0 qkv has no calibration inputs/)
  })
})

describe.skipIf(!hasShared)(`AWQ on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`, () => {
  let realPool: WorkerPool
  let model: LoadedModel
  beforeAll(async () => {
    realPool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(shared('models/stories260K'))
  })
  afterAll(() => realPool?.close())

  it('w4 g32 is no worse than RTN w4 g32 (+0.5%)', async () => {
    const windows = referenceCalibrationWindows()
    const r = await runRecipe(
      realPool,
      model,
      validateRecipe({ steps: [{ method: 'awq', params: { bits: 4, group_size: 32 } }] }),
      { windows },
    )
    expect(r.tensors).toHaveLength(35)
    const ppl = (await perplexity(realPool, r.view, referenceIds('tinystories_eval'), { seqlen: 256 })).ppl
    const rtn = referenceRun('rtn_w4_g32').ppl.tinystories_eval['256'].ppl
    const alphas = r.tensors
      .filter((t) => ['q', 'o', 'gate', 'down'].includes(t.role))
      .map((t) => `${t.layer}.${t.role} ${t.note}`)
    console.log(
      `awq w4 g32: ppl ${ppl.toFixed(4)} (rtn w4 g32 reference ${rtn.toFixed(4)}, ${r.seconds.toFixed(1)} s to compress)\n  ${alphas.join('\n  ')}`,
    )
    expect(Number.isFinite(ppl)).toBe(true)
    expect(ppl).toBeLessThanOrEqual(rtn * 1.005)
  })
})
