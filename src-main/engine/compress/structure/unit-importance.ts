// How much each prunable unit (head group, MLP neuron; unit-masks.ts) matters, three ways:
// - regression (Bonsai, Dery et al. 2024): sample sub-models that keep each unit with probability p,
//   measure each one's loss with forward passes only, and fit the loss as a linear function of the keep
//   masks by ridge regression; a unit's importance is how much its presence lowers the loss (−β). No
//   gradients are needed.
// - magnitude: the L2 norm of the unit's weights (its q/k/v rows and o columns, or its gate/up rows and
//   down column), the usual structured-magnitude baseline.
// - random: seeded noise, the floor any estimate must beat.
// Higher is more important in all three.

import { tensorName } from '../../arch'
import { WhittleError } from '../../errors'
import { readTensorF32 } from '../../formats/read'
import type { CausalLM } from '../../forward'
import { throwIfCancelled } from '../../jobs/cancel'
import type { LoadedModel } from '../../model/loaded-model'
import { seededRandom } from '../../train/seeded-random'
import { subModelLosses, type UnitLayout, type UnitMask } from './unit-masks'

/** Per layer, a score for each head group and each neuron; higher means more important. */
export interface UnitScores {
  groups: Float64Array[]
  neurons: Float64Array[]
}

export interface RegressionOptions {
  /** Sub-models sampled (in pairs: a draw and its complement over the candidates). */
  samples: number
  /** Probability that a sampled sub-model keeps each candidate unit. */
  keep: number
  /** The ridge penalty, relative to the variance of one mask entry over the samples (S·p(1−p)). */
  ridge: number
  seed: number
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export interface RegressionImportance extends UnitScores {
  /** The sampled sub-models' losses (mean NLL), in sampling order. */
  losses: number[]
}

/**
 * Sub-models of `base` (units it removed stay removed): each candidate unit is kept with probability
 * `keep`, every other unit kept; every second draw is the complement of the one before over the
 * candidates (antithetic pairs, as Bonsai samples), which halves the variance of the fit.
 */
export function sampleMasks(
  base: UnitMask,
  candidates: UnitMask,
  samples: number,
  keep: number,
  seed: number,
): UnitMask[] {
  const random = seededRandom(seed)
  const draw = (b: Uint8Array, c: Uint8Array): Uint8Array =>
    Uint8Array.from(b, (kept, i) => (kept && c[i] ? (random() < keep ? 1 : 0) : kept))
  const complement = (m: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array =>
    Uint8Array.from(m, (kept, i) => (b[i] && c[i] ? 1 - kept : kept))
  const out: UnitMask[] = []
  for (let s = 0; s < samples; s++) {
    if (s % 2 === 1) {
      const prev = out[s - 1]
      out.push({
        groups: prev.groups.map((m, l) => complement(m, base.groups[l], candidates.groups[l])),
        neurons: prev.neurons.map((m, l) => complement(m, base.neurons[l], candidates.neurons[l])),
      })
    } else
      out.push({
        groups: base.groups.map((b, l) => draw(b, candidates.groups[l])),
        neurons: base.neurons.map((b, l) => draw(b, candidates.neurons[l])),
      })
  }
  return out
}

/** Solves A x = b for symmetric positive definite A (n × n, row-major; overwritten) by Cholesky. */
export function solveSpd(A: Float64Array, b: Float64Array, n: number): Float64Array {
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j]
    for (let k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k]
    if (!(d > 0))
      throw new WhittleError(
        'validation',
        null,
        'the importance regression is singular (no ridge and too few sub-model samples); give ridge > 0',
      )
    const l = Math.sqrt(d)
    A[j * n + j] = l
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j]
      for (let k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k]
      A[i * n + j] = s / l
    }
  }
  const x = Float64Array.from(b)
  for (let i = 0; i < n; i++) {
    let s = x[i]
    for (let k = 0; k < i; k++) s -= A[i * n + k] * x[k]
    x[i] = s / A[i * n + i]
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = x[i]
    for (let k = i + 1; k < n; k++) s -= A[k * n + i] * x[k]
    x[i] = s / A[i * n + i]
  }
  return x
}

/**
 * Ridge regression y ≈ c + X β on centred columns: β = argmin ‖y − c − Xβ‖² + λ‖β‖², X [S, U] row-major.
 * Solved in the smaller of the two equivalent forms: (XᵀX + λI) β = Xᵀy, or β = Xᵀ (XXᵀ + λI)⁻¹ y.
 */
export function ridgeRegression(X: Float64Array, y: Float64Array, S: number, U: number, lambda: number): Float64Array {
  const Xc = Float64Array.from(X)
  for (let u = 0; u < U; u++) {
    let mean = 0
    for (let s = 0; s < S; s++) mean += X[s * U + u]
    mean /= S
    for (let s = 0; s < S; s++) Xc[s * U + u] -= mean
  }
  const yMean = y.reduce((a, v) => a + v, 0) / S
  const yc = Float64Array.from(y, (v) => v - yMean)
  if (S < U) {
    const G = new Float64Array(S * S)
    for (let i = 0; i < S; i++)
      for (let j = 0; j <= i; j++) {
        let s = 0
        for (let u = 0; u < U; u++) s += Xc[i * U + u] * Xc[j * U + u]
        G[i * S + j] = G[j * S + i] = s
      }
    for (let i = 0; i < S; i++) G[i * S + i] += lambda
    const alpha = solveSpd(G, yc, S)
    const beta = new Float64Array(U)
    for (let s = 0; s < S; s++) for (let u = 0; u < U; u++) beta[u] += Xc[s * U + u] * alpha[s]
    return beta
  }
  const G = new Float64Array(U * U)
  const rhs = new Float64Array(U)
  for (let s = 0; s < S; s++) {
    const row = s * U
    for (let i = 0; i < U; i++) {
      const xi = Xc[row + i]
      if (xi === 0) continue
      rhs[i] += xi * yc[s]
      for (let j = 0; j <= i; j++) G[i * U + j] += xi * Xc[row + j]
    }
  }
  for (let i = 0; i < U; i++) {
    for (let j = 0; j < i; j++) G[j * U + i] = G[i * U + j]
    G[i * U + i] += lambda
  }
  return solveSpd(G, rhs, U)
}

/**
 * Bonsai's importance of the candidate units of sub-model `base`: losses of sampled sub-models regressed
 * on their keep masks. Candidates score −β (how much their presence lowers the loss); units `base`
 * removed score −Infinity (already gone), the other kept units +Infinity (not candidates this round).
 */
export async function regressionImportance(
  forward: CausalLM,
  layout: UnitLayout,
  windows: Int32Array[],
  base: UnitMask,
  candidates: UnitMask,
  options: RegressionOptions,
): Promise<RegressionImportance> {
  const masks = sampleMasks(base, candidates, options.samples, options.keep, options.seed)
  const losses: number[] = []
  const chunk = 16
  for (let i = 0; i < masks.length; i += chunk) {
    throwIfCancelled(options.signal)
    losses.push(
      ...(await subModelLosses(forward, layout, windows, masks.slice(i, i + chunk), { signal: options.signal })),
    )
    options.onProgress?.(losses.length / masks.length, `sub-model ${losses.length}/${masks.length}`)
  }
  // Columns: the candidates still in base, each layer's groups then each layer's neurons.
  const columns: { kind: 'groups' | 'neurons'; layer: number; index: number }[] = []
  for (const kind of ['groups', 'neurons'] as const)
    base[kind].forEach((b, layer) =>
      b.forEach((kept, index) => {
        if (kept && candidates[kind][layer][index]) columns.push({ kind, layer, index })
      }),
    )
  const S = masks.length,
    U = columns.length
  const X = new Float64Array(S * U)
  masks.forEach((m, s) => columns.forEach((c, u) => (X[s * U + u] = m[c.kind][c.layer][c.index])))
  const lambda = Math.max(1e-9, options.ridge * S * options.keep * (1 - options.keep))
  const beta = U > 0 ? ridgeRegression(X, Float64Array.from(losses), S, U, lambda) : new Float64Array(0)
  const scores = (b: Uint8Array): Float64Array => Float64Array.from(b, (kept) => (kept ? Infinity : -Infinity))
  const groups = base.groups.map(scores)
  const neurons = base.neurons.map(scores)
  columns.forEach((c, u) => ((c.kind === 'groups' ? groups : neurons)[c.layer][c.index] = -beta[u]))
  return { groups, neurons, losses }
}

/** The L2 norm of each unit's weights. */
export async function magnitudeScores(model: LoadedModel, layout: UnitLayout): Promise<UnitScores> {
  const a = model.arch
  const read = async (layer: number, role: 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down'): Promise<Float32Array> => {
    const name = tensorName(a, layer, role)
    if (!name) throw new WhittleError('not-found', model.files.path, `layer ${layer} has no ${role} projection`)
    return readTensorF32(model.entry(name))
  }
  const H = a.hiddenSize
  const groupWidth = layout.headsPerGroup * layout.headDim
  const qDim = layout.groups * groupWidth
  const groups: Float64Array[] = []
  const neurons: Float64Array[] = []
  for (let l = 0; l < layout.layers; l++) {
    const [q, k, v, o, gate, up, down] = await Promise.all(
      (['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const).map((r) => read(l, r)),
    )
    const sq = (w: Float32Array, from: number, to: number): number => {
      let s = 0
      for (let i = from; i < to; i++) s += w[i] * w[i]
      return s
    }
    const g = new Float64Array(layout.groups)
    for (let j = 0; j < layout.groups; j++) {
      let s = sq(q, j * groupWidth * H, (j + 1) * groupWidth * H)
      s += sq(k, j * layout.headDim * H, (j + 1) * layout.headDim * H)
      s += sq(v, j * layout.headDim * H, (j + 1) * layout.headDim * H)
      for (let r = 0; r < H; r++) s += sq(o, r * qDim + j * groupWidth, r * qDim + (j + 1) * groupWidth)
      g[j] = Math.sqrt(s)
    }
    const F = layout.neurons[l]
    const n = new Float64Array(F)
    for (let i = 0; i < F; i++) {
      let s = sq(gate, i * H, (i + 1) * H) + sq(up, i * H, (i + 1) * H)
      for (let r = 0; r < H; r++) s += down[r * F + i] * down[r * F + i]
      n[i] = Math.sqrt(s)
    }
    groups.push(g)
    neurons.push(n)
  }
  return { groups, neurons }
}

/** Seeded uniform noise: a random selection of units. */
export function randomScores(layout: UnitLayout, seed: number): UnitScores {
  const random = seededRandom(seed)
  return {
    groups: Array.from({ length: layout.layers }, () => Float64Array.from({ length: layout.groups }, random)),
    neurons: layout.neurons.map((n) => Float64Array.from({ length: n }, random)),
  }
}
