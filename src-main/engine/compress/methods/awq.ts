// AWQ (Lin et al. 2023, mit-han-lab/llm-awq auto_scale.py): activation-aware weight quantization.
// Input channels that carry large activations matter most, so before quantizing, each Linear's input
// columns are multiplied by s_j = mean|x_j|^α (normalised) and the op producing the input divides by
// the same s: the float function is unchanged, but the salient columns now get a finer share of
// their quantization group's range. α is searched on a grid per input group, on calibration inputs.
//
// Producers, as in the reference's Llama path: q/k/v ← attn_norm, gate/up ← ffn_norm, down ← up_proj
// (its rows), o ← v_proj (its rows) only when v's output width equals o's input (MHA; with GQA the
// reference skips o, and so does this). The reference measures each α's loss at the output of the
// enclosing module (the whole attention, the whole MLP); this measures it at the outputs of the
// group's own Linears — a simplification that needs no attention/MLP forward here:
//   loss(α) = mean over sampled rows x of Σ_Linears ‖x Wᵀ − (x/s) Q(W·s)ᵀ‖².
// Every search runs on the float weights first, then all folds are applied, then every targeted
// Linear is quantized with RTN groups (min-max, as `rtn`).

import type { InputGroup, TensorRole } from '../../../contract/api'
import type { InputStats } from '../../calibration/capture'
import { WhittleError } from '../../errors'
import { allocTensor, type ArenaTensor } from '../../pool/arena-tensors'
import { matmul } from '../../forward/parallel-ops'
import type { WorkerPool } from '../../pool/worker-pool'
import { uniformBitsPerWeight } from '../quant/grouping'
import type { CompressionMethod, GroupContext, LayerContext, LinearOutcome, LinearToCompress } from './method'
import { ParamReader } from './params'
import { rtnQuantize } from './rtn'
import { parseUniform, uniformFormat, uniformParamSpecs, type UniformParams } from '../quant/uniform-format'
import { intParam, type ParamSpec } from '../../../contract/method-params'

export interface AwqParams extends UniformParams {
  /** α is searched over r / grid, r = 0 .. grid − 1. */
  grid: number
}

type Sampled = InputStats & { sample: Float32Array; sampleRows: number }

const f = Math.fround

/** The reference's clamp on s before normalising (x_max.pow(α).clamp(min=1e-4)). */
const MIN_SCALE = 1e-4

/**
 * s_j = max(meanAbs_j^α, 1e-4) / sqrt(max(s) · min(s)): the normalisation centres s around 1 on a
 * log scale, so neither the producer nor the weights drift far in magnitude.
 */
export function awqScales(meanAbs: ArrayLike<number>, alpha: number): Float32Array {
  const s = Float32Array.from(meanAbs, (m) => Math.max(f(Math.pow(m, alpha)), MIN_SCALE))
  let lo = Infinity,
    hi = 0
  for (const v of s) {
    lo = Math.min(lo, v)
    hi = Math.max(hi, v)
  }
  const norm = f(Math.sqrt(f(hi * lo)))
  return s.map((v) => f(v / norm))
}

/** Mean |x_j| over all calibration tokens. */
export function meanAbsActivation(stats: InputStats): Float64Array {
  return stats.sumAbs.map((v) => v / stats.tokens)
}

/**
 * Σ over the sampled rows x and the rows r of E of (x · E_r)², with the sample resident in kernel
 * memory and E sent in chunks of rows (so memory stays bounded by the chunk, not by the Linear).
 */
export class SampleProjection {
  private constructor(
    private readonly pool: WorkerPool,
    private readonly x: ArenaTensor,
    private readonly e: ArenaTensor,
    private readonly y: ArenaTensor,
    readonly rows: number,
    readonly cols: number,
    private readonly chunkRows: number,
  ) {}

  static create(
    pool: WorkerPool,
    sample: Float32Array,
    sampleRows: number,
    cols: number,
    maxRows: number,
  ): SampleProjection {
    // Both the chunk of E (rows × cols) and its product (sampleRows × rows) stay under 4M floats.
    const chunkRows = Math.max(1, Math.min(maxRows, Math.floor((1 << 22) / Math.max(1, cols, sampleRows))))
    const x = allocTensor(pool, sampleRows * cols)
    const e = allocTensor(pool, chunkRows * cols)
    const y = allocTensor(pool, sampleRows * chunkRows)
    // Views are taken after every allocation: growing the memory detaches older ones.
    x.view().set(sample.subarray(0, sampleRows * cols))
    return new SampleProjection(pool, x, e, y, sampleRows, cols, chunkRows)
  }

  async sumSquares(E: Float32Array, rows: number): Promise<number> {
    let total = 0
    for (let r0 = 0; r0 < rows; r0 += this.chunkRows) {
      const n = Math.min(this.chunkRows, rows - r0)
      this.e.view().set(E.subarray(r0 * this.cols, (r0 + n) * this.cols))
      await matmul(this.pool, this.x.ptr, this.e.ptr, this.y.ptr, this.rows, this.cols, n)
      const y = this.y.view()
      for (let i = 0; i < this.rows * n; i++) total += y[i] * y[i]
    }
    return total
  }

  free(): void {
    this.x.free()
    this.e.free()
    this.y.free()
  }
}

export interface ScaleSearch {
  alpha: number
  scale: Float32Array
  /** loss(α) for α = r / grid, in order. */
  losses: number[]
}

/** W − Q(W·s)/s: the weight error as the unscaled input sees it. */
function scaledQuantError(l: LinearToCompress<AwqParams>, s: Float32Array): Float32Array {
  const { rows, cols, weight: W } = l
  const Q = new Float32Array(W.length)
  for (let i = 0; i < W.length; i++) Q[i] = f(W[i] * s[i % cols])
  rtnQuantize(Q, rows, cols, l.params)
  for (let i = 0; i < W.length; i++) Q[i] = W[i] - Q[i] / s[i % cols]
  return Q
}

/**
 * Searches α for one input group on its Linears' float weights (not modified). The first minimum
 * wins, as in the reference (`loss < best`).
 */
export async function searchScale(
  pool: WorkerPool,
  linears: LinearToCompress<AwqParams>[],
  input: Sampled,
  grid: number,
): Promise<ScaleSearch> {
  const cols = linears[0].cols
  const meanAbs = meanAbsActivation(input)
  const projection = SampleProjection.create(
    pool,
    input.sample,
    input.sampleRows,
    cols,
    Math.max(...linears.map((l) => l.rows)),
  )
  try {
    const losses: number[] = []
    let best = { alpha: 0, scale: awqScales(meanAbs, 0), loss: Infinity }
    for (let r = 0; r < grid; r++) {
      const alpha = r / grid
      const scale = awqScales(meanAbs, alpha)
      let loss = 0
      for (const l of linears) loss += await projection.sumSquares(scaledQuantError(l, scale), l.rows)
      loss /= input.sampleRows
      losses.push(loss)
      if (loss < best.loss) best = { alpha, scale, loss }
    }
    return { alpha: best.alpha, scale: best.scale, losses }
  } finally {
    projection.free()
  }
}

/** Where a group's scale is folded: a norm's weight, or the rows of the Linear producing the input. */
type Producer = { kind: 'norm'; norm: TensorRole; readers: TensorRole[] } | { kind: 'linear'; producer: TensorRole }

const NORM_READERS: Partial<Record<InputGroup, { norm: TensorRole; readers: TensorRole[] }>> = {
  qkv: { norm: 'attn_norm', readers: ['q', 'k', 'v', 'qkv'] },
  gate_up: { norm: 'ffn_norm', readers: ['gate', 'up'] },
}

/** The layer's tensors by role, read once; the non-targeted ones we change are written back at the end. */
class LayerTensors {
  private readonly targeted = new Map<TensorRole, LinearToCompress<AwqParams>>()
  private readonly others = new Map<TensorRole, Float32Array | null>()
  private readonly changed = new Set<TensorRole>()

  constructor(private readonly ctx: LayerContext<AwqParams>) {
    for (const g of ctx.groups) for (const l of g.linears) this.targeted.set(l.role, l)
  }

  /** The live values (a targeted Linear's own weight array, else a cached copy), or null if absent. */
  async get(role: TensorRole): Promise<Float32Array | null> {
    const t = this.targeted.get(role)
    if (t) return t.weight
    if (!this.others.has(role)) this.others.set(role, await this.ctx.read(role))
    return this.others.get(role)!
  }

  markChanged(role: TensorRole): void {
    if (!this.targeted.has(role)) this.changed.add(role)
  }

  flush(): void {
    for (const role of this.changed) this.ctx.write(role, this.others.get(role)!)
  }
}

/** The producer to fold a group's scale into, or why there is none. */
async function findProducer(g: GroupContext<AwqParams>, tensors: LayerTensors): Promise<Producer | string> {
  const cols = g.linears[0].cols
  const outRows = g.linears[0].rows
  // RMSNorm has no bias to rescale; a LayerNorm's bias is not reachable through the layer context.
  // Llama-family layers (RMSNorm) are the ones with a gated MLP.
  const gated = (await tensors.get('gate')) !== null
  const fromNorm = NORM_READERS[g.group]
  if (fromNorm) {
    if (!gated) return 'the producing norm is not an RMSNorm (no gate_proj), its bias cannot be folded'
    const norm = await tensors.get(fromNorm.norm)
    if (!norm) return `no ${fromNorm.norm} to fold into`
    if (norm.length !== cols) return `${fromNorm.norm} has ${norm.length} values for ${cols} inputs`
    return { kind: 'norm', norm: fromNorm.norm, readers: fromNorm.readers }
  }
  const producer: TensorRole = g.group === 'down' ? 'up' : 'v'
  const values = await tensors.get(producer)
  if (!values) return `no ${producer}_proj to fold into`
  if (g.group === 'down' && !gated) return 'the MLP is not gated'
  // The producer reads the hidden state: its input width is this group's output width.
  const producerRows = values.length / outRows
  if (producerRows !== cols) {
    return g.group === 'o'
      ? `grouped-query attention: v_proj's output width ${producerRows} ≠ o_proj's input ${cols}; the AWQ reference skips o too`
      : `${producer}_proj's output width ${producerRows} ≠ ${cols}`
  }
  return { kind: 'linear', producer }
}

function scaleColumns(W: Float32Array, cols: number, s: Float32Array): void {
  for (let i = 0; i < W.length; i++) W[i] = f(W[i] * s[i % cols])
}

function divideRows(W: Float32Array, s: Float32Array): void {
  const cols = W.length / s.length
  for (let i = 0; i < W.length; i++) W[i] = f(W[i] / s[Math.floor(i / cols)])
}

export interface GroupScaling {
  group: GroupContext<AwqParams>
  scale: Float32Array | null
  note: string
}

function checkGroup(g: GroupContext<AwqParams>): Sampled {
  const input = g.input as Sampled | null
  if (!input || input.tokens === 0 || !input.sample || input.sampleRows === 0) {
    throw new WhittleError('validation', null, `awq: layer ${g.layer} ${g.group} has no calibration inputs`)
  }
  for (const l of g.linears) {
    if (l.cols !== input.channels)
      throw new WhittleError(
        'validation',
        null,
        `awq: ${l.name} has ${l.cols} inputs but its calibration statistics have ${input.channels}`,
      )
    if (!l.weight.every(Number.isFinite))
      throw new WhittleError('validation', null, `awq: ${l.name} has non-finite weights`)
  }
  return input
}

/**
 * Searches and folds the scales of every group of the layer (weights stay float). Returns, per group,
 * the scale now folded in (null when the group has no usable producer) and a note for the report.
 */
export async function awqScaleLayer(ctx: LayerContext<AwqParams>): Promise<GroupScaling[]> {
  const tensors = new LayerTensors(ctx)
  const plans: { group: GroupContext<AwqParams>; producer: Producer | string; search: ScaleSearch | null }[] = []
  for (const g of ctx.groups) {
    if (g.linears.length === 0) continue
    const input = checkGroup(g)
    const producer = await findProducer(g, tensors)
    // Every group's search sees the original float weights: nothing is folded until all are chosen.
    const search =
      typeof producer === 'string' ? null : await searchScale(ctx.pool, g.linears, input, g.linears[0].params.grid)
    plans.push({ group: g, producer, search })
  }
  const out: GroupScaling[] = []
  for (const { group, producer, search } of plans) {
    if (typeof producer === 'string' || !search) {
      out.push({ group, scale: null, note: `AWQ: not scaled (${producer as string})` })
      continue
    }
    const s = search.scale
    const cols = group.linears[0].cols
    if (producer.kind === 'norm') {
      const norm = (await tensors.get(producer.norm))!
      for (let j = 0; j < cols; j++) norm[j] = f(norm[j] / s[j])
      tensors.markChanged(producer.norm)
      // Every Linear reading the norm's output must take s, targeted or not.
      for (const role of producer.readers) {
        const W = await tensors.get(role)
        if (!W) continue
        scaleColumns(W, cols, s)
        tensors.markChanged(role)
      }
    } else {
      const P = (await tensors.get(producer.producer))!
      divideRows(P, s)
      tensors.markChanged(producer.producer)
      for (const l of group.linears) scaleColumns(l.weight, cols, s)
    }
    out.push({ group, scale: s, note: `AWQ α=${search.alpha.toFixed(2)}` })
  }
  tensors.flush()
  return out
}

/** Linears whose output rows were divided by a later group's scale (their output is what changed). */
function rowScaledRoles(scalings: GroupScaling[]): Map<TensorRole, InputGroup> {
  const out = new Map<TensorRole, InputGroup>()
  for (const { group, scale } of scalings) {
    if (!scale) continue
    if (group.group === 'down') out.set('up', 'down')
    if (group.group === 'o') out.set('v', 'o')
  }
  return out
}

export const AWQ_PARAMS: readonly ParamSpec[] = [
  ...uniformParamSpecs(128),
  intParam('grid', 20, 1, 1000, 'Points of the search over the scaling exponent α in [0, 1)'),
]

export const awq: CompressionMethod<AwqParams> = {
  name: 'awq',
  kind: 'quantize',
  summary: 'AWQ: activation-aware per-channel scales searched on calibration inputs, folded in, then grouped RTN',
  params: AWQ_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, AWQ_PARAMS)
    const p: AwqParams = { ...parseUniform(r), grid: r.int('grid') }
    r.done()
    return p
  },
  predict: (p, _rows, cols) => ({
    bitsPerWeight: uniformBitsPerWeight(p.bits, cols, p.groupSize, p.sym),
    format: `${uniformFormat(p)} awq`,
  }),
  async compressGroup(ctx) {
    // Without the layer there is no producer to fold into: plain RTN with the same grid.
    return ctx.linears.map((l) => {
      const record = rtnQuantize(l.weight, l.rows, l.cols, l.params)
      return {
        name: l.name,
        record,
        bitsPerWeight: uniformBitsPerWeight(l.params.bits, l.cols, l.params.groupSize, l.params.sym),
        format: `${uniformFormat(l.params)} awq`,
        note: 'AWQ: not scaled (no layer context)',
      }
    })
  },
  async compressLayer(ctx) {
    const scalings = await awqScaleLayer(ctx)
    const rowScaled = rowScaledRoles(scalings)
    const outcomes: LinearOutcome[] = []
    for (const { group, scale, note } of scalings) {
      for (const l of group.linears) {
        const record = rtnQuantize(l.weight, l.rows, l.cols, l.params)
        const by = rowScaled.get(l.role)
        outcomes.push({
          name: l.name,
          record,
          bitsPerWeight: uniformBitsPerWeight(l.params.bits, l.cols, l.params.groupSize, l.params.sym),
          format: `${uniformFormat(l.params)} awq`,
          note: by ? `${note}; output rows divided by the ${by} group's scale` : note,
          ...(scale ? { inputScale: scale } : {}),
        })
      }
    }
    return outcomes
  },
}
