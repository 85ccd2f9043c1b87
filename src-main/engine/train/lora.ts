// LoRA (Hu et al. 2021) on frozen Linears, as PEFT builds it: a target Linear W [out, in] computes
//   y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ,   s = alpha / r,   A [r, in], B [out, r]
// with B = 0 at the start (so the adapted model is the base model at step 0) and A drawn like PEFT's
// default, torch.nn.init.kaiming_uniform_(A, a = √5): U(−b, b) with b = gain·√(3 / fan_in),
// gain = √(2 / (1 + a²)) = √(1/3), so b = 1 / √in. Only A and B take gradients; W stays frozen.
//
// Backward of one adapted Linear, with dy = ∂L/∂y [M, out] and xd = drop(x) [M, in]:
//   u = s·xd·Aᵀ [M, r];  dB += dyᵀ·u;  g = s·dy·B [M, r];  dA += gᵀ·xd;  dx += (g·A) ⊙ dropMask
// Dropout (PEFT applies it to the adapter's input only) draws its mask from a hash of (seed, pass,
// layer, Linear, element), so the forward during activation checkpointing's recompute sees the same mask.

import { WhittleError } from '../errors'
import { TensorScope } from '../forward/block-context'
import { matmul } from '../forward/parallel-ops'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { WorkerPool } from '../pool/worker-pool'
import type { LinearHooks } from './llama-block'
import { LLAMA_LINEARS, linearShapes, type LlamaLinear, type LlamaWeights } from './llama-weights'
import { matmulNN, matmulTNAcc } from './parallel-grad'
import { seededRandom } from './seeded-random'

export interface LoraSettings {
  /** Rank of the adapters. */
  r: number
  /** Scale numerator: the adapter's output is multiplied by alpha / r. */
  alpha: number
  /** Dropout probability on the adapter's input (0 = none). */
  dropout: number
  /** Seed of A's initialisation and of the dropout masks. */
  seed: number
}

/** One trained adapter as plain arrays (what merging and the exporters take). */
export interface LoraAdapterWeights {
  /** The adapted base weight's tensor name (e.g. model.layers.0.self_attn.q_proj.weight). */
  name: string
  layer: number
  role: LlamaLinear
  /** out features */
  rows: number
  /** in features */
  cols: number
  /** [r, cols] */
  A: Float32Array
  /** [rows, r] */
  B: Float32Array
}

export interface LoraAdapterSet {
  r: number
  alpha: number
  dropout: number
  adapters: LoraAdapterWeights[]
}

export function loraScale(s: { r: number; alpha: number }): number {
  return s.alpha / s.r
}

export function checkLoraSettings(s: LoraSettings): void {
  const bad = (what: string): never => {
    throw new WhittleError('validation', null, `lora: ${what}`)
  }
  if (!Number.isInteger(s.r) || s.r < 1) bad(`r must be a positive integer (got ${s.r})`)
  if (!(s.alpha > 0) || !Number.isFinite(s.alpha)) bad(`alpha must be a positive number (got ${s.alpha})`)
  if (!(s.dropout >= 0 && s.dropout < 1)) bad(`dropout must be in [0, 1) (got ${s.dropout})`)
}

/** W + s·B·A for one adapter (a new array; W is [rows, cols]). */
export function mergeAdapter(W: Float32Array, a: LoraAdapterWeights, scale: number): Float32Array {
  const { rows, cols, A, B } = a
  const r = A.length / cols
  const out = Float32Array.from(W)
  const acc = new Float64Array(cols)
  for (let i = 0; i < rows; i++) {
    acc.fill(0)
    for (let k = 0; k < r; k++) {
      const b = B[i * r + k]
      if (b === 0) continue
      const row = k * cols
      for (let j = 0; j < cols; j++) acc[j] += b * A[row + j]
    }
    for (let j = 0; j < cols; j++) out[i * cols + j] = Math.fround(out[i * cols + j] + scale * acc[j])
  }
  return out
}

/** PEFT's kaiming_uniform_(a = √5) bound for a weight with `fanIn` inputs. */
export function kaimingUniformBound(fanIn: number): number {
  const a = Math.sqrt(5)
  const gain = Math.sqrt(2 / (1 + a * a))
  return gain * Math.sqrt(3 / fanIn)
}

/** A uniform value in [0, 1) from a 32-bit hash of the four integers (dropout masks). */
function hashUniform(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35)
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ Math.imul(c + 0x27d4eb2f, 0x165667b1)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) ^ d
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b)
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296
}

export interface LoraParam {
  name: string
  layer: number
  role: LlamaLinear
  weight: ArenaTensor
  grad: ArenaTensor
  mask: null
}

interface LiveAdapter {
  target: { name: string; layer: number; role: LlamaLinear; rows: number; cols: number }
  A: ArenaTensor
  B: ArenaTensor
  dA: ArenaTensor
  dB: ArenaTensor
}

/** The adapters of a model in kernel memory, with their gradients and the scratch their passes use. */
export class LoraAdapters extends TensorScope {
  private readonly byLayer: Map<LlamaLinear, LiveAdapter>[]
  private readonly live: LiveAdapter[] = []
  readonly scale: number
  private scratchRows = 0
  private u: ArenaTensor | null = null
  private tmp: ArenaTensor | null = null
  private dropped: ArenaTensor | null = null
  private readonly g = new Map<LlamaLinear, ArenaTensor>()
  private readonly maxIn: number
  private readonly maxOut: number
  /** Set by the trainer before each pass: the dropout masks of a pass are drawn from it. */
  pass = 0

  constructor(
    pool: WorkerPool,
    student: LlamaWeights,
    readonly settings: LoraSettings,
    isTarget: (name: string, layer: number, role: LlamaLinear) => boolean,
  ) {
    super(pool)
    checkLoraSettings(settings)
    this.scale = loraScale(settings)
    const shapes = linearShapes(student.arch)
    const random = seededRandom(settings.seed)
    this.byLayer = student.layers.map(() => new Map())
    let maxIn = 1,
      maxOut = 1
    try {
      student.layers.forEach((_, l) => {
        for (const role of LLAMA_LINEARS) {
          const name = student.names[l][role]
          if (!isTarget(name, l, role)) continue
          const [rows, cols] = shapes[role]
          const r = settings.r
          const A = this.alloc(r * cols),
            B = this.alloc(rows * r),
            dA = this.alloc(r * cols),
            dB = this.alloc(rows * r)
          const bound = kaimingUniformBound(cols)
          const a = A.view()
          for (let i = 0; i < a.length; i++) a[i] = (2 * random() - 1) * bound
          B.view().fill(0)
          dA.view().fill(0)
          dB.view().fill(0)
          const adapter: LiveAdapter = { target: { name, layer: l, role, rows, cols }, A, B, dA, dB }
          this.byLayer[l].set(role, adapter)
          this.live.push(adapter)
          maxIn = Math.max(maxIn, cols)
          maxOut = Math.max(maxOut, rows)
        }
      })
    } catch (e) {
      this.free()
      throw e
    }
    if (this.live.length === 0)
      throw new WhittleError('validation', null, 'lora: the targets match no decoder-block Linear')
    this.maxIn = maxIn
    this.maxOut = maxOut
  }

  get count(): number {
    return this.live.length
  }

  /** A and B of every adapter as optimizer parameters (never masked). */
  params(): LoraParam[] {
    return this.live.flatMap((a) => [
      {
        name: `${a.target.name}:lora_A`,
        layer: a.target.layer,
        role: a.target.role,
        weight: a.A,
        grad: a.dA,
        mask: null,
      },
      {
        name: `${a.target.name}:lora_B`,
        layer: a.target.layer,
        role: a.target.role,
        weight: a.B,
        grad: a.dB,
        mask: null,
      },
    ])
  }

  /** Adapter parameters (A and B) in all. */
  get paramCount(): number {
    return this.live.reduce((s, a) => s + a.A.length + a.B.length, 0)
  }

  /** Copies of the adapters as they stand. */
  snapshot(): LoraAdapterSet {
    const { r, alpha, dropout } = this.settings
    return {
      r,
      alpha,
      dropout,
      adapters: this.live.map((a) => ({ ...a.target, A: a.A.view().slice(), B: a.B.view().slice() })),
    }
  }

  /**
   * Kernel-memory floats the adapters take for passes of M rows: A, B and their gradients, and the
   * scratch (u and g per Linear role, one output-sized buffer, the dropped input with dropout).
   */
  formulaFloats(M: number): number {
    const r = this.settings.r
    return (
      2 * this.paramCount +
      M * r * (1 + LLAMA_LINEARS.length) +
      M * Math.max(this.maxIn, this.maxOut) +
      (this.settings.dropout > 0 ? M * this.maxIn : 0)
    )
  }

  /** Scratch for passes of up to `rows` rows (grown on demand, kept between passes). */
  private ensure(rows: number): void {
    if (rows <= this.scratchRows) return
    for (const t of [this.u, this.tmp, this.dropped, ...this.g.values()]) if (t) this.drop(t)
    this.g.clear()
    const r = this.settings.r
    this.u = this.alloc(rows * r)
    this.tmp = this.alloc(rows * Math.max(this.maxIn, this.maxOut))
    this.dropped = this.settings.dropout > 0 ? this.alloc(rows * this.maxIn) : null
    for (const role of LLAMA_LINEARS) this.g.set(role, this.alloc(rows * r))
    this.scratchRows = rows
  }

  /** The adapter input: x itself, or x with the pass's dropout mask applied (scaled by 1 / (1 − p)). */
  private input(a: LiveAdapter, x: ArenaTensor, M: number): ArenaTensor {
    const p = this.settings.dropout
    if (p === 0) return x
    const K = a.target.cols,
      keep = 1 / (1 - p)
    const src = x.view(),
      dst = this.dropped!.view()
    const roleIndex = LLAMA_LINEARS.indexOf(a.target.role)
    for (let i = 0; i < M * K; i++) dst[i] = this.kept(a.target.layer, roleIndex, i) ? src[i] * keep : 0
    return this.dropped!
  }

  private kept(layer: number, roleIndex: number, i: number): boolean {
    return hashUniform(this.settings.seed, this.pass, layer * 8 + roleIndex, i) >= this.settings.dropout
  }

  /** u = s·xd·Aᵀ for the first M rows. */
  private async down(a: LiveAdapter, xd: ArenaTensor, M: number): Promise<ArenaTensor> {
    const r = this.settings.r,
      u = this.u!
    await matmul(this.pool, xd.ptr, a.A.ptr, u.ptr, M, a.target.cols, r)
    const uv = u.view()
    for (let i = 0; i < M * r; i++) uv[i] *= this.scale
    return u
  }

  /** The hooks the block runner calls for layer l (null when no Linear of it is adapted). */
  hooks(l: number): LinearHooks | null {
    const adapters = this.byLayer[l]
    if (!adapters || adapters.size === 0) return null
    const k = this.pool.kernels
    return {
      forward: async (role, x, y, M) => {
        const a = adapters.get(role)
        if (!a) return
        this.ensure(M)
        const u = await this.down(a, this.input(a, x, M), M)
        const N = a.target.rows
        await matmul(this.pool, u.ptr, a.B.ptr, this.tmp!.ptr, M, this.settings.r, N)
        k.add_inplace(y.ptr, this.tmp!.ptr, M * N)
      },
      weightGrads: async (role, dy, x, M) => {
        const a = adapters.get(role)
        if (!a) return
        this.ensure(M)
        const r = this.settings.r,
          N = a.target.rows,
          K = a.target.cols
        const xd = this.input(a, x, M)
        const u = await this.down(a, xd, M)
        await matmulTNAcc(this.pool, dy.ptr, u.ptr, a.dB.ptr, M, N, r)
        const g = this.g.get(role)!
        await matmulNN(this.pool, dy.ptr, a.B.ptr, g.ptr, M, N, r)
        const gv = g.view()
        for (let i = 0; i < M * r; i++) gv[i] *= this.scale
        await matmulTNAcc(this.pool, g.ptr, xd.ptr, a.dA.ptr, M, r, K)
      },
      inputGrad: async (role, dx, M) => {
        const a = adapters.get(role)
        if (!a) return
        const r = this.settings.r,
          K = a.target.cols,
          g = this.g.get(role)!
        if (this.settings.dropout === 0) return matmulNN(this.pool, g.ptr, a.A.ptr, dx.ptr, M, r, K, true)
        await matmulNN(this.pool, g.ptr, a.A.ptr, this.tmp!.ptr, M, r, K)
        const t = this.tmp!.view(),
          d = dx.view(),
          keep = 1 / (1 - this.settings.dropout)
        const roleIndex = LLAMA_LINEARS.indexOf(role)
        for (let i = 0; i < M * K; i++) if (this.kept(l, roleIndex, i)) d[i] += t[i] * keep
      },
    }
  }
}
