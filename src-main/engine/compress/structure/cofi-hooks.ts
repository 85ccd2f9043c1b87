// CoFi's gates in the student's forward and backward on the training engine (train/llama-block.ts hooks):
// each head group's attention output is multiplied by its gate before o_proj, each MLP neuron's
// activation silu(g)·u by its gate before down_proj: exactly where removing the unit zeroes it.
//
// With y = z·x (x the ungated input, kept here), the block's own backward computes ∂L/∂y in the buffer
// that held y; at that point (LinearHooks.inputGrad) the gate's gradient is Σ ∂L/∂y·x over the unit's
// channels and rows, and ∂L/∂x = z·∂L/∂y replaces ∂L/∂y in place for the rest of the backward.
//
// One copy of x per role is enough: the trainer runs block l's forward (recomputed from its checkpoint,
// or the last block's from the forward pass itself) right before block l's backward.

import type { ArenaTensor } from '../../pool/arena-tensors'
import type { LinearHooks } from '../../train/llama-block'
import type { LlamaLinear } from '../../train/llama-weights'
import type { CofiGates } from './cofi-gates'

/** Multiplies channels [j·width, (j + 1)·width) of each of M rows of `x` by gates[j]. */
function scaleUnits(x: Float32Array, M: number, gates: Float32Array, width: number): void {
  const rowLength = gates.length * width
  for (let r = 0; r < M; r++)
    for (let j = 0; j < gates.length; j++) {
      const z = gates[j]
      if (z === 1) continue
      const start = r * rowLength + j * width
      for (let c = start; c < start + width; c++) x[c] *= z
    }
}

/** Adds Σ_rows Σ_channels dy·x of each unit to grads[j]. */
function addGateGrads(dy: Float32Array, x: Float32Array, M: number, grads: Float64Array, width: number): void {
  const rowLength = grads.length * width
  for (let r = 0; r < M; r++)
    for (let j = 0; j < grads.length; j++) {
      const start = r * rowLength + j * width
      let s = 0
      for (let c = start; c < start + width; c++) s += dy[c] * x[c]
      grads[j] += s
    }
}

/** The trainer's studentHooks for `gates`: per layer, gating hooks that also collect ∂L/∂z. */
export function cofiHooks(gates: CofiGates): (layer: number) => LinearHooks {
  const groupWidth = gates.layout.headsPerGroup * gates.layout.headDim
  const saved: Partial<Record<LlamaLinear, Float32Array>> = {}
  const keep = (role: LlamaLinear, x: Float32Array): void => {
    let s = saved[role]
    if (!s || s.length < x.length) s = saved[role] = new Float32Array(x.length)
    s.set(x)
  }
  return (layer) => {
    const unit = (role: LlamaLinear): { z: Float32Array; grads: Float64Array; width: number } | null => {
      if (role === 'o') return { z: gates.groupGates(layer), grads: gates.groupGrads(layer), width: groupWidth }
      if (role === 'down') return { z: gates.neuronGates(layer), grads: gates.neuronGrads(layer), width: 1 }
      return null
    }
    return {
      input(role: LlamaLinear, x: ArenaTensor, M: number): void {
        const u = unit(role)
        if (!u) return
        const values = x.view().subarray(0, M * u.z.length * u.width)
        keep(role, values)
        scaleUnits(values, M, u.z, u.width)
      },
      forward: async () => {},
      weightGrads: async () => {},
      async inputGrad(role: LlamaLinear, dx: ArenaTensor, M: number): Promise<void> {
        const u = unit(role)
        if (!u) return
        const dy = dx.view().subarray(0, M * u.z.length * u.width)
        addGateGrads(dy, saved[role]!, M, u.grads, u.width)
        scaleUnits(dy, M, u.z, u.width)
      },
    }
  }
}
