// Which tensors hurt most when quantized, and a per-tensor bit assignment for a target size.
//
// Sensitivity is kept simple enough to explain in one line: a tensor's relative error after the run
// (output error on calibration inputs when measured, else weight error) times its share of the
// compressed parameters. A large tensor with a moderate error matters more than a tiny one with a
// large error, because it carries more of the model's computation.
//
// The proposal starts every reassignable tensor at the fewest bits and spends the remaining budget
// greedily: each round it takes the one upgrade (to the tensor's next bit choice) that removes the
// most estimated sensitivity per added bit of average storage, as long as the average stays within
// the target. Each extra bit of a uniform quantizer halves its step, so a tensor's error at b bits
// is estimated as measured × 2^(measured bits − b).

import type { CompressedTensor, RecipeDoc } from '@contract/api'
import {
  effectiveParams,
  moduleName,
  paramDefault,
  setOverrideBits,
  takesBits,
  type MethodCatalogue,
} from './recipe-edit'

export interface SensitivityRow {
  name: string
  module: string
  layer: number
  role: string
  method: string
  step: number
  rows: number
  cols: number
  params: number
  /** Share of the compressed parameters, 0..1. */
  share: number
  /** The relative error used: output error where measured, else weight error. */
  error: number
  errorKind: 'output' | 'weight'
  sensitivity: number
  /** Bits the error was measured at (the code width, without scale overhead). */
  bits: number
  bitsPerWeight: number
}

/** The code width behind a format ("w4 g128 asym" → 4, "Q6_K" → 6), else the whole part of bits/w. */
export function measuredBits(t: Pick<CompressedTensor, 'format' | 'bitsPerWeight'>): number {
  const w = /\bw(\d+)\b/.exec(t.format)
  if (w) return Number(w[1])
  const q = /\bQ(\d+)_/.exec(t.format)
  if (q) return Number(q[1])
  return Math.max(1, Math.floor(t.bitsPerWeight + 1e-9))
}

/** One row per tensor (the last step that touched it decides), most sensitive first. */
export function rankSensitivity(tensors: readonly CompressedTensor[]): SensitivityRow[] {
  const last = new Map<string, CompressedTensor>()
  for (const t of tensors) {
    const held = last.get(t.name)
    if (!held || t.step >= held.step) last.set(t.name, t)
  }
  const list = [...last.values()]
  const total = list.reduce((n, t) => n + t.shape[0] * t.shape[1], 0)
  const rows = list.map((t): SensitivityRow => {
    const params = t.shape[0] * t.shape[1]
    const output = t.relOutputError !== null && Number.isFinite(t.relOutputError)
    const raw = output ? (t.relOutputError as number) : t.relWeightError
    const error = Number.isFinite(raw) ? raw : 0
    const share = total > 0 ? params / total : 0
    return {
      name: t.name,
      module: moduleName(t.name),
      layer: t.layer,
      role: t.role,
      method: t.method,
      step: t.step,
      rows: t.shape[0],
      cols: t.shape[1],
      params,
      share,
      error,
      errorKind: output ? 'output' : 'weight',
      sensitivity: error * share,
      bits: measuredBits(t),
      bitsPerWeight: t.bitsPerWeight,
    }
  })
  return rows.sort((a, b) => b.sensitivity - a.sensitivity || a.name.localeCompare(b.name))
}

/**
 * Storage bits per weight of a uniformly quantized [rows, cols] Linear: the codes plus an fp16 scale
 * and, when asymmetric, a `bits`-wide zero point per group of `groupSize` input columns (≤ 0 or ≥
 * cols = one group per row). At 4 bits asymmetric this is the familiar bits + 20 / group.
 */
export function uniformBitsPerWeight(bits: number, cols: number, groupSize: number, sym: boolean): number {
  const g = groupSize > 0 && groupSize < cols ? groupSize : cols
  return bits + (16 + (sym ? 0 : bits)) / g
}

export interface StorageRule {
  groupSize: number
  sym: boolean
}

export interface Assignment {
  name: string
  module: string
  step: number
  /** False: the method takes no bit width, so the tensor keeps what the run gave it. */
  reassignable: boolean
  measuredBits: number
  bits: number
  bitsPerWeight: number
  params: number
  /** Estimated relative error at `bits`. */
  error: number
  sensitivity: number
}

export interface Proposal {
  target: number
  assignments: Assignment[]
  /** Parameter-weighted average storage bits per weight of the proposal. */
  bitsPerWeight: number
  /** The average with every reassignable tensor at the fewest bits: the smallest reachable. */
  minimumBitsPerWeight: number
  /** False when even the fewest bits exceed the target (the assignment is then the smallest one). */
  feasible: boolean
  /** Σ sensitivity as measured, and as estimated for the proposal. */
  sensitivityBefore: number
  sensitivityAfter: number
}

export interface ProposalOptions {
  target: number
  /** Bit widths to choose from, e.g. [3, 4, 8]. */
  choices: readonly number[]
  /** Grouping of each tensor's storage (by name); default per channel, asymmetric. */
  storage: (row: SensitivityRow) => StorageRule
  /** Whether a tensor's bits can be changed (its method takes bits). */
  reassignable: (row: SensitivityRow) => boolean
}

const EPS = 1e-9

export function proposeBits(rows: readonly SensitivityRow[], options: ProposalOptions): Proposal {
  const choices = [...new Set(options.choices.filter((b) => Number.isInteger(b) && b >= 1 && b <= 16))].sort(
    (a, b) => a - b,
  )
  const totalParams = rows.reduce((n, r) => n + r.params, 0)
  const state = rows.map((r) => {
    const movable = choices.length > 0 && options.reassignable(r)
    const rule = options.storage(r)
    return { row: r, movable, rule, level: 0 }
  })
  const bitsOf = (s: (typeof state)[number]): number => (s.movable ? choices[s.level] : s.row.bits)
  const bpwOf = (s: (typeof state)[number], bits: number): number =>
    s.movable ? uniformBitsPerWeight(bits, s.row.cols, s.rule.groupSize, s.rule.sym) : s.row.bitsPerWeight
  const errorAt = (s: (typeof state)[number], bits: number): number => s.row.error * 2 ** (s.row.bits - bits)

  let storedBits = state.reduce((sum, s) => sum + s.row.params * bpwOf(s, bitsOf(s)), 0)
  const average = (): number => (totalParams > 0 ? storedBits / totalParams : 0)
  const minimum = average()
  const target = options.target
  const feasible = minimum <= target + EPS

  while (feasible) {
    let best: { s: (typeof state)[number]; added: number; ratio: number } | null = null
    for (const s of state) {
      if (!s.movable || s.level + 1 >= choices.length) continue
      const from = choices[s.level]
      const to = choices[s.level + 1]
      const added = s.row.params * (bpwOf(s, to) - bpwOf(s, from))
      if ((storedBits + added) / totalParams > target + EPS) continue
      const gain = s.row.share * (errorAt(s, from) - errorAt(s, to))
      const ratio = added > 0 ? gain / added : Infinity
      // Ties go to the more sensitive tensor, then to the name, so the result does not depend on order.
      if (
        !best ||
        ratio > best.ratio + 1e-15 ||
        (Math.abs(ratio - best.ratio) <= 1e-15 && s.row.sensitivity > best.s.row.sensitivity)
      )
        best = { s, added, ratio }
    }
    if (!best) break
    best.s.level++
    storedBits += best.added
  }

  const assignments = state.map((s): Assignment => {
    const bits = bitsOf(s)
    const error = s.movable ? errorAt(s, bits) : s.row.error
    return {
      name: s.row.name,
      module: s.row.module,
      step: s.row.step,
      reassignable: s.movable,
      measuredBits: s.row.bits,
      bits,
      bitsPerWeight: bpwOf(s, bits),
      params: s.row.params,
      error,
      sensitivity: error * s.row.share,
    }
  })
  return {
    target,
    assignments,
    bitsPerWeight: average(),
    minimumBitsPerWeight: minimum,
    feasible,
    sensitivityBefore: rows.reduce((n, r) => n + r.sensitivity, 0),
    sensitivityAfter: assignments.reduce((n, a) => n + a.sensitivity, 0),
  }
}

/** How each compressed tensor was stored in the run: its step's params with the overrides applied. */
export function storageFromRecipe(catalogue: MethodCatalogue, recipe: RecipeDoc): (row: SensitivityRow) => StorageRule {
  return (row) => {
    const p = effectiveParams(recipe, row.step, row.name)
    const fallback = paramDefault(catalogue, recipe.steps[row.step]?.method ?? row.method, 'group_size')
    const g = typeof p.group_size === 'number' ? p.group_size : typeof fallback === 'number' ? fallback : -1
    return { groupSize: g, sym: p.sym === true }
  }
}

/** A tensor's bits can be reassigned when the step that compressed it is a uniform quantizer. */
export function reassignableIn(catalogue: MethodCatalogue, recipe: RecipeDoc): (row: SensitivityRow) => boolean {
  return (row) => takesBits(catalogue, recipe.steps[row.step]?.method ?? row.method)
}

/**
 * The proposal as recipe overrides: `{bits}` for every tensor whose proposed bits differ from what
 * the recipe would give it now. Tensors already at their proposed bits are left alone.
 */
export function applyProposal(
  catalogue: MethodCatalogue,
  recipe: RecipeDoc,
  assignments: readonly Assignment[],
): RecipeDoc {
  let next = recipe
  for (const a of assignments) {
    if (!a.reassignable || !next.steps[a.step]) continue
    const method = next.steps[a.step].method
    const current = effectiveParams(next, a.step, a.name).bits ?? paramDefault(catalogue, method, 'bits')
    if (current === a.bits) continue
    next = setOverrideBits(next, a.module, a.bits)
  }
  return next
}
