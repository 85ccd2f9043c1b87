// CoFi's learned masks (Xia et al. 2022): one hard-concrete gate (Louizos et al. 2018, "Learning sparse
// neural networks through L0 regularization") per prunable unit, the units Bonsai removes
// (unit-masks.ts): attention head groups and MLP intermediate neurons.
//
// A gate with parameter log α draws u ~ U(0, 1) and
//   s = sigmoid((log u − log(1 − u) + log α) / β),  z = clamp(s·(r − l) + l, 0, 1)
// with β = 2/3 and the stretch (l, r) = (−0.1, 1.1), so z is exactly 0 or 1 with positive probability and
// differentiable in log α in between. The probability that a gate is non-zero, its expected L0, is
//   P(z ≠ 0) = sigmoid(log α − β·log(−l / r)).
// At the end the gate is deterministic: z = clamp(sigmoid(log α)·(r − l) + l, 0, 1).
//
// The expected share of the model's parameters the gates remove, ŝ = Σ_units (1 − P(z ≠ 0))·params / total,
// is driven to the target t by the Lagrangian λ1(ŝ − t) + λ2(ŝ − t)²: the log α descend it, the λ ascend it
// (the paper's constrained optimisation). Gates and λ are a few thousand numbers: they live in JS, with
// their own Adam.

import type { UnitLayout } from './unit-masks'

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

/** Adam on a flat vector (the gates' and the multipliers' optimiser); descends, or ascends with sign −1. */
class SmallAdam {
  private readonly m: Float64Array
  private readonly v: Float64Array
  private t = 0

  constructor(
    size: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    this.m = new Float64Array(size)
    this.v = new Float64Array(size)
  }

  step(x: Float64Array, grad: Float64Array, lr: number, sign: 1 | -1 = 1): void {
    this.t++
    const c1 = 1 - this.beta1 ** this.t,
      c2 = 1 - this.beta2 ** this.t
    for (let i = 0; i < x.length; i++) {
      this.m[i] = this.beta1 * this.m[i] + (1 - this.beta1) * grad[i]
      this.v[i] = this.beta2 * this.v[i] + (1 - this.beta2) * grad[i] * grad[i]
      x[i] -= (sign * lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + this.eps)
    }
  }
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
 * The gates of every unit of `layout`, flat: per layer its head groups, then its neurons. z holds the
 * values the student's forward multiplies by (a sample, or the deterministic gates); gradZ collects
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
  /** The Lagrange multipliers λ1, λ2. */
  readonly lambda = new Float64Array(2)
  private readonly gateAdam: SmallAdam
  private readonly lambdaAdam = new SmallAdam(2)

  constructor(
    readonly layout: UnitLayout,
    /** Parameters of the whole model, the denominator of the sparsity. */
    readonly totalParams: number,
    /** Initial drop rate d: log α starts at log((1 − d) / d), as the paper's droprate_init. */
    droprateInit: number,
  ) {
    let n = 0
    for (let l = 0; l < layout.layers; l++) {
      this.groupStart.push(n)
      n += layout.groups
      this.neuronStart.push(n)
      n += layout.neurons[l]
    }
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
  }

  /** Sets every gate to its deterministic value (no gradient flows to log α then). */
  makeDeterministic(): void {
    for (let i = 0; i < this.z.length; i++) {
      this.z[i] = deterministicGate(this.logAlpha[i])
      this.dz[i] = 0
    }
    this.gradZ.fill(0)
  }

  /** Sets given gate values (tests: finite differences of the loss in z). */
  setGates(values: ArrayLike<number>): void {
    this.z.set(values)
    this.dz.fill(0)
    this.gradZ.fill(0)
  }

  /** ŝ: the expected share of the model's parameters removed, and ∂ŝ/∂ log α. */
  expectedSparsity(): { value: number; grad: Float64Array } {
    const grad = new Float64Array(this.logAlpha.length)
    let removed = 0
    for (let i = 0; i < this.logAlpha.length; i++) {
      const p = expectedL0(this.logAlpha[i])
      removed += (1 - p) * this.unitParams[i]
      grad[i] = (-this.unitParams[i] * p * (1 - p)) / this.totalParams
    }
    return { value: removed / this.totalParams, grad }
  }

  /** The expected keep probability of every unit, per layer, in unit-importance's shape (for selectUnits). */
  keepProbabilities(): { groups: Float64Array[]; neurons: Float64Array[] } {
    const p = this.logAlpha.map(expectedL0)
    return {
      groups: this.groupStart.map((s) => p.slice(s, s + this.layout.groups)),
      neurons: this.neuronStart.map((s, l) => p.slice(s, s + this.layout.neurons[l])),
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
