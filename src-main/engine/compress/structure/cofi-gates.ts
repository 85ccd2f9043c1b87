// CoFi's learned masks (Xia et al. 2022): one hard-concrete gate (Louizos et al. 2018, "Learning sparse
// neural networks through L0 regularization") per prunable unit, the units Bonsai removes
// (unit-masks.ts): attention head groups and MLP intermediate neurons; and, coarser, one gate per block's
// attention sub-layer (z_MHA) and one per MLP sub-layer (z_MLP), which multiply the sub-layer's output and
// so every unit's gate inside it: a unit's effective gate is z_MHA·z_head (z_MLP·z_neuron).
//
// A gate with parameter log α draws u ~ U(0, 1) and
//   s = sigmoid((log u − log(1 − u) + log α) / β),  z = clamp(s·(r − l) + l, 0, 1)
// with β = 2/3 and the stretch (l, r) = (−0.1, 1.1), so z is exactly 0 or 1 with positive probability and
// differentiable in log α in between. The probability that a gate is non-zero, its expected L0, is
//   P(z ≠ 0) = sigmoid(log α − β·log(−l / r)).
// At the end the gate is deterministic: z = clamp(sigmoid(log α)·(r − l) + l, 0, 1).
//
// The expected share of the model's parameters the gates remove, counted as the paper counts them (a unit
// survives when its own gate and its sub-layer's gate both do),
//   ŝ = Σ_layers Σ_units (1 − P(z_sub ≠ 0)·P(z_unit ≠ 0))·params_unit / total,
// is driven to the target t by the Lagrangian λ1(ŝ − t) + λ2(ŝ − t)²: the log α descend it, the λ ascend it
// (the paper's constrained optimisation). Gates and λ are a few thousand numbers: they live in JS, with
// their own Adam.
//
// With hidden gates (the paper's z_hidden, one per residual-stream dimension, shared by every layer: they
// multiply the embedding output and every sub-layer's output before the residual add), every matrix's
// hidden-side size scales with the kept dimensions, so with h̄ = Σ_k P(z_hidden,k ≠ 0) / H
//   ŝ = [Σ_units (1 − P(z_sub ≠ 0)·P(z_unit ≠ 0)·h̄)·params_unit + (1 − h̄)·params_rest] / total
// where params_rest is everything outside the units (embedding, lm_head, norms: one hidden-sized side each).

import { SmallAdam } from '../../train/small-adam'
import type { UnitLayout } from './unit-masks'
import type { UnitSelection } from './unit-selection'

export const HARD_CONCRETE = { beta: 2 / 3, left: -0.1, right: 1.1 } as const

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x))

/** P(z ≠ 0) of a gate: its expected L0 norm. */
export function expectedL0(logAlpha: number): number {
  const { beta, left, right } = HARD_CONCRETE
  return sigmoid(logAlpha - beta * Math.log(-left / right))
}

/** A gate's sample for the uniform draw u ∈ (0, 1), and dz/d log α (0 where the clamp holds). */
export function sampleGate(logAlpha: number, u: number): { z: number; dz: number } {
  const { beta, left, right } = HARD_CONCRETE
  const s = sigmoid((Math.log(u) - Math.log(1 - u) + logAlpha) / beta)
  const stretched = s * (right - left) + left
  if (stretched <= 0) return { z: 0, dz: 0 }
  if (stretched >= 1) return { z: 1, dz: 0 }
  return { z: stretched, dz: ((right - left) * s * (1 - s)) / beta }
}

/** The gate at test time: no noise. */
export function deterministicGate(logAlpha: number): number {
  const { left, right } = HARD_CONCRETE
  return Math.min(1, Math.max(0, sigmoid(logAlpha) * (right - left) + left))
}

/** What one gate update did: the expected sparsity and the Lagrangian's value, for progress and notes. */
export interface GateStepReport {
  expectedSparsity: number
  target: number
  lagrangian: number
  lambda1: number
  lambda2: number
}

/**
 * The gates of every unit of `layout`, flat: per layer its head groups, then its neurons; after all
 * layers, per layer its attention and its MLP sub-layer gate; then, with hidden gates, one per hidden
 * dimension. z holds the values the student's forward multiplies by (a sample, or the deterministic gates); gradZ collects
 * ∂loss/∂z from the backward (cofi-hooks.ts) until the next update.
 */
export class CofiGates {
  readonly logAlpha: Float64Array
  readonly z: Float32Array
  readonly gradZ: Float64Array
  /** dz/d log α of the current sample. */
  private readonly dz: Float64Array
  /** Parameters each unit holds. */
  private readonly unitParams: Float64Array
  private readonly groupStart: number[] = []
  private readonly neuronStart: number[] = []
  /** Index of the first sub-layer gate: layer l's attention gate is at subStart + 2l, its MLP's next. */
  private readonly subStart: number
  /** Index of the first hidden-dimension gate (= z.length when there are none). */
  private readonly hiddenStart: number
  /** Parameters outside the units (embedding, lm_head, norms), which scale with the kept hidden dimensions. */
  private readonly restParams: number
  /** The Lagrange multipliers λ1, λ2. */
  readonly lambda = new Float64Array(2)
  private readonly gateAdam: SmallAdam
  private readonly lambdaAdam = new SmallAdam(2)
  /** Whether z holds the deterministic gates (makeDeterministic since the last sample). */
  private deterministic = false

  constructor(
    readonly layout: UnitLayout,
    /** Parameters of the whole model, the denominator of the sparsity. */
    readonly totalParams: number,
    /** Initial drop rate d: log α starts at log((1 − d) / d), as the paper's droprate_init. */
    droprateInit: number,
    /** Hidden dimensions gated (z_hidden): the model's hidden size, or 0 for no hidden gates. */
    readonly hiddenSize = 0,
  ) {
    let n = 0
    for (let l = 0; l < layout.layers; l++) {
      this.groupStart.push(n)
      n += layout.groups
      this.neuronStart.push(n)
      n += layout.neurons[l]
    }
    this.subStart = n
    n += 2 * layout.layers
    this.hiddenStart = n
    n += hiddenSize
    this.logAlpha = new Float64Array(n).fill(Math.log((1 - droprateInit) / droprateInit))
    this.z = new Float32Array(n).fill(1)
    this.gradZ = new Float64Array(n)
    this.dz = new Float64Array(n)
    this.unitParams = new Float64Array(n)
    for (let l = 0; l < layout.layers; l++) {
      this.unitParams.fill(layout.groupParams, this.groupStart[l], this.groupStart[l] + layout.groups)
      this.unitParams.fill(layout.neuronParams, this.neuronStart[l], this.neuronStart[l] + layout.neurons[l])
    }
    this.gateAdam = new SmallAdam(n)
    this.restParams = totalParams - this.unitParams.reduce((a, v) => a + v, 0)
  }

  /** The hidden-dimension gates (a view into z; empty without hidden gates). */
  hiddenGates(): Float32Array {
    return this.z.subarray(this.hiddenStart, this.hiddenStart + this.hiddenSize)
  }

  /** The hidden-dimension slice of gradZ. */
  hiddenGrads(): Float64Array {
    return this.gradZ.subarray(this.hiddenStart, this.hiddenStart + this.hiddenSize)
  }

  /** Index in z of hidden dimension k's gate. */
  hiddenIndex(k: number): number {
    return this.hiddenStart + k
  }

  /** Index in z of layer l's attention (sub = 'attention') or MLP sub-layer gate. */
  subLayerIndex(l: number, sub: 'attention' | 'mlp'): number {
    return this.subStart + 2 * l + (sub === 'attention' ? 0 : 1)
  }

  /** Layer l's head-group gates times its attention gate: what multiplies each group's output. */
  effectiveGroupGates(l: number): Float32Array {
    const z = this.z[this.subLayerIndex(l, 'attention')]
    return this.groupGates(l).map((g) => g * z)
  }

  /** Layer l's neuron gates times its MLP gate: what multiplies each neuron's activation. */
  effectiveNeuronGates(l: number): Float32Array {
    const z = this.z[this.subLayerIndex(l, 'mlp')]
    return this.neuronGates(l).map((g) => g * z)
  }

  /** The layers whose attention / MLP sub-layer gate is now exactly 0 (after makeDeterministic: removed). */
  zeroSubLayers(): { attention: number[]; mlp: number[] } {
    const layers = Array.from({ length: this.layout.layers }, (_, l) => l)
    return {
      attention: layers.filter((l) => this.z[this.subLayerIndex(l, 'attention')] === 0),
      mlp: layers.filter((l) => this.z[this.subLayerIndex(l, 'mlp')] === 0),
    }
  }

  /** Layer l's head-group gates (a view into z). */
  groupGates(l: number): Float32Array {
    return this.z.subarray(this.groupStart[l], this.groupStart[l] + this.layout.groups)
  }

  /** Layer l's neuron gates (a view into z). */
  neuronGates(l: number): Float32Array {
    return this.z.subarray(this.neuronStart[l], this.neuronStart[l] + this.layout.neurons[l])
  }

  /** Layer l's head-group slice of gradZ. */
  groupGrads(l: number): Float64Array {
    return this.gradZ.subarray(this.groupStart[l], this.groupStart[l] + this.layout.groups)
  }

  /** Layer l's neuron slice of gradZ. */
  neuronGrads(l: number): Float64Array {
    return this.gradZ.subarray(this.neuronStart[l], this.neuronStart[l] + this.layout.neurons[l])
  }

  /** Draws new gate values (uniforms from `random`, in [0, 1)), clearing the gradients. */
  sample(random: () => number): void {
    for (let i = 0; i < this.z.length; i++) {
      const u = Math.min(1 - 1e-6, Math.max(1e-6, random()))
      const g = sampleGate(this.logAlpha[i], u)
      this.z[i] = g.z
      this.dz[i] = g.dz
    }
    this.gradZ.fill(0)
    this.deterministic = false
  }

  /** Sets every gate to its deterministic value (no gradient flows to log α then). */
  makeDeterministic(): void {
    for (let i = 0; i < this.z.length; i++) {
      this.z[i] = deterministicGate(this.logAlpha[i])
      this.dz[i] = 0
    }
    this.gradZ.fill(0)
    this.deterministic = true
  }

  /** Sets given gate values (tests: finite differences of the loss in z). */
  setGates(values: ArrayLike<number>): void {
    this.z.set(values)
    this.dz.fill(0)
    this.gradZ.fill(0)
    this.deterministic = true
  }

  /** The sub-layer gate index that multiplies unit i (every unit has one; i below subStart). */
  private subLayerOf(i: number): number {
    for (let l = this.layout.layers - 1; l >= 0; l--) {
      if (i >= this.neuronStart[l]) return this.subLayerIndex(l, 'mlp')
      if (i >= this.groupStart[l]) return this.subLayerIndex(l, 'attention')
    }
    throw new Error(`unit ${i} precedes every layer`)
  }

  /** ŝ: the expected share of the model's parameters removed, and ∂ŝ/∂ log α. */
  expectedSparsity(): { value: number; grad: Float64Array } {
    const grad = new Float64Array(this.logAlpha.length)
    const p = this.logAlpha.map(expectedL0)
    const H = this.hiddenSize
    // h̄: the expected kept share of the hidden dimensions (1 without hidden gates).
    let hiddenShare = 1
    if (H > 0) {
      hiddenShare = 0
      for (let k = 0; k < H; k++) hiddenShare += p[this.hiddenStart + k] / H
    }
    let removed = (1 - hiddenShare) * this.restParams
    // ∂(kept parameters)/∂h̄, gathered over the units, for the hidden gates' gradient.
    let perHiddenShare = this.restParams
    for (let i = 0; i < this.subStart; i++) {
      const sub = this.subLayerOf(i)
      const kept = p[sub] * p[i]
      removed += (1 - kept * hiddenShare) * this.unitParams[i]
      perHiddenShare += kept * this.unitParams[i]
      // d P(z ≠ 0) / d log α = p(1 − p): the unit's own gate, then its sub-layer's.
      grad[i] = (-this.unitParams[i] * hiddenShare * p[sub] * p[i] * (1 - p[i])) / this.totalParams
      grad[sub] += (-this.unitParams[i] * hiddenShare * p[i] * p[sub] * (1 - p[sub])) / this.totalParams
    }
    for (let k = 0; k < H; k++) {
      const q = p[this.hiddenStart + k]
      grad[this.hiddenStart + k] = (-perHiddenShare * q * (1 - q)) / H / this.totalParams
    }
    return { value: removed / this.totalParams, grad }
  }

  /**
   * Per layer, the probability that each unit survives, P(z_sub ≠ 0)·P(z_unit ≠ 0), in unit-importance's
   * shape (for selectUnits); −Infinity where the sub-layer's gate is exactly 0 (the unit is gone already,
   * whatever its own gate: removing it costs nothing).
   */
  keepProbabilities(): { groups: Float64Array[]; neurons: Float64Array[] } {
    const p = this.logAlpha.map(expectedL0)
    const survive = (start: number, count: number, l: number, sub: 'attention' | 'mlp'): Float64Array => {
      const s = this.subLayerIndex(l, sub)
      const dead = this.deterministic && this.z[s] === 0
      return p.slice(start, start + count).map((v) => (dead ? -Infinity : v * p[s]))
    }
    return {
      groups: this.groupStart.map((s, l) => survive(s, this.layout.groups, l, 'attention')),
      neurons: this.neuronStart.map((s, l) => survive(s, this.layout.neurons[l], l, 'mlp')),
    }
  }

  /**
   * One update after an optimizer step of the weights: log α descends the distillation loss (through
   * gradZ and the sample's dz/d log α) plus the Lagrangian at target t; λ ascends the Lagrangian.
   */
  update(target: number, lr: number, lambdaLr: number): GateStepReport {
    const s = this.expectedSparsity()
    const gap = s.value - target
    const [l1, l2] = this.lambda
    const lagrangian = l1 * gap + l2 * gap * gap
    const dLag = l1 + 2 * l2 * gap
    const grad = new Float64Array(this.logAlpha.length)
    for (let i = 0; i < grad.length; i++) grad[i] = this.gradZ[i] * this.dz[i] + dLag * s.grad[i]
    this.gateAdam.step(this.logAlpha, grad, lr)
    this.lambdaAdam.step(this.lambda, Float64Array.of(gap, gap * gap), lambdaLr, -1)
    return { expectedSparsity: s.value, target, lagrangian, lambda1: l1, lambda2: l2 }
  }
}

/** Multiplies the columns of a [rows, cols] weight in blocks of `width` by gates[j]. */
function foldColumns(w: Float32Array, cols: number, gates: Float32Array, width: number): void {
  for (let r = 0; r < w.length / cols; r++)
    for (let j = 0; j < gates.length; j++) {
      const z = gates[j]
      if (z === 1) continue
      for (let c = j * width; c < (j + 1) * width; c++) w[r * cols + c] *= z
    }
}

/** Multiplies row k of a [rows, cols] weight by gates[k]. */
function foldRows(w: Float32Array, cols: number, gates: Float32Array): void {
  for (let k = 0; k < gates.length; k++) {
    const z = gates[k]
    if (z !== 1) for (let c = k * cols; c < (k + 1) * cols; c++) w[c] *= z
  }
}

/**
 * Folds layer l's gates as they stand (sub-layer times unit, and the hidden gates on their output rows)
 * into its o_proj and down_proj weights, in place: the plain forward of the folded weights computes what
 * the gated forward computed (the embedding's hidden gates: remove-hidden.ts's foldHiddenGates).
 */
export function foldGates(gates: CofiGates, l: number, o: Float32Array, down: Float32Array): void {
  const layout = gates.layout
  const groupWidth = layout.headsPerGroup * layout.headDim
  foldColumns(o, layout.groups * groupWidth, gates.effectiveGroupGates(l), groupWidth)
  foldColumns(down, layout.neurons[l], gates.effectiveNeuronGates(l), 1)
  if (gates.hiddenSize > 0) {
    foldRows(o, layout.groups * groupWidth, gates.hiddenGates())
    foldRows(down, layout.neurons[l], gates.hiddenGates())
  }
}

/**
 * A selection without the units of MLP sub-layers gated to exactly 0, beyond the one neuron every layer
 * keeps (their output is 0 whatever they hold, so they go even when the budget is met), under per-layer
 * widths; with `uniform` widths, and for head groups (one head count for every layer), they stay, with
 * their outputs folded to 0.
 */
export function dropZeroSubLayers(gates: CofiGates, selection: UnitSelection, uniform: boolean): UnitSelection {
  if (uniform) return selection
  const zero = new Set(gates.zeroSubLayers().mlp)
  let removed = selection.removedParams
  const neurons = selection.neurons.map((kept, l) => {
    if (!zero.has(l) || kept.length <= 1) return kept
    removed += (kept.length - 1) * gates.layout.neuronParams
    return kept.slice(0, 1)
  })
  return { groups: selection.groups, neurons, removedParams: removed }
}
