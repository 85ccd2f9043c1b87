// CoFi's gates in the student's forward and backward on the training engine (train/llama-block.ts hooks):
// each head group's attention output is multiplied by its gate before o_proj, each MLP neuron's
// activation silu(g)·u by its gate before down_proj: exactly where removing the unit zeroes it. The
// sub-layer gates (z_MHA, z_MLP) multiply the sub-layer's output, which is the same as multiplying each of
// its units' gates: the hooks apply e_j = z_sub·z_j, and split the gradient g_j = ∂L/∂e_j between the two,
// ∂L/∂z_j = z_sub·g_j and ∂L/∂z_sub = Σ_j z_j·g_j.
//
// With y = z·x (x the ungated input, kept here), the block's own backward computes ∂L/∂y in the buffer
// that held y; at that point (LinearHooks.inputGrad) the gate's gradient is Σ ∂L/∂y·x over the unit's
// channels and rows, and ∂L/∂x = z·∂L/∂y replaces ∂L/∂y in place for the rest of the backward.
//
// The hidden-dimension gates z_hidden multiply, column by column, the embedding output (cofiEmbeddingHooks)
// and o_proj's and down_proj's outputs y before the residual add (LinearHooks.forward). In the backward
// (LinearHooks.outputGrad) the block recomputes y = x·Wᵀ from the Linear's input, which it still holds
// (a checkpointed block's forward stops before down_proj, so no copy of y survives); the gate's gradient
// is Σ_rows ∂L/∂out·y, and the Linear sees z·∂L/∂out while the residual path keeps ∂L/∂out.
//
// One copy of x per role is enough: the trainer runs block l's forward (recomputed from its checkpoint,
// or the last block's from the forward pass itself) right before block l's backward.

import type { ArenaTensor } from '../../pool/arena-tensors'
import type { LinearHooks } from '../../train/llama-block'
import type { EmbeddingHooks } from '../../train/llama-trainer'
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

/** Multiplies column k of each of M rows of `y` by z[k]. */
function scaleColumns(y: Float32Array, M: number, z: Float32Array): void {
  const H = z.length
  for (let r = 0; r < M; r++)
    for (let k = 0; k < H; k++) {
      const g = z[k]
      if (g !== 1) y[r * H + k] *= g
    }
}

/** Adds Σ_rows dOut·y of each column k to grads[k]. */
function addColumnGrads(dOut: Float32Array, y: Float32Array, M: number, grads: Float64Array): void {
  const H = grads.length
  for (let r = 0; r < M; r++) for (let k = 0; k < H; k++) grads[k] += dOut[r * H + k] * y[r * H + k]
}

/** The trainer's embeddingHooks for `gates`' hidden gates (null without them). */
export function cofiEmbeddingHooks(gates: CofiGates): EmbeddingHooks | null {
  if (gates.hiddenSize === 0) return null
  let embedded = new Float32Array(0)
  return {
    forward(x: Float32Array, M: number): void {
      if (embedded.length < x.length) embedded = new Float32Array(x.length)
      embedded.set(x)
      scaleColumns(x, M, gates.hiddenGates())
    },
    backward(dx: Float32Array, M: number): void {
      addColumnGrads(dx, embedded, M, gates.hiddenGrads())
    },
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
  interface Units {
    /** The units' own gates and their gradients (views into gates.z and gates.gradZ). */
    z: Float32Array
    grads: Float64Array
    /** Index in gates.z of the sub-layer gate over them. */
    sub: number
    width: number
  }
  return (layer) => {
    const unit = (role: LlamaLinear): Units | null => {
      if (role === 'o')
        return {
          z: gates.groupGates(layer),
          grads: gates.groupGrads(layer),
          sub: gates.subLayerIndex(layer, 'attention'),
          width: groupWidth,
        }
      if (role === 'down')
        return {
          z: gates.neuronGates(layer),
          grads: gates.neuronGrads(layer),
          sub: gates.subLayerIndex(layer, 'mlp'),
          width: 1,
        }
      return null
    }
    const effective = (u: Units): Float32Array => u.z.map((g) => g * gates.z[u.sub])
    return {
      input(role: LlamaLinear, x: ArenaTensor, M: number): void {
        const u = unit(role)
        if (!u) return
        const values = x.view().subarray(0, M * u.z.length * u.width)
        keep(role, values)
        scaleUnits(values, M, effective(u), u.width)
      },
      async forward(role: LlamaLinear, _x: ArenaTensor, y: ArenaTensor, M: number): Promise<void> {
        if (gates.hiddenSize === 0 || (role !== 'o' && role !== 'down')) return
        scaleColumns(y.view().subarray(0, M * gates.hiddenSize), M, gates.hiddenGates())
      },
      ...(gates.hiddenSize > 0
        ? {
            outputGrad(role: LlamaLinear, dOut: ArenaTensor, y: ArenaTensor, M: number): void {
              const n = M * gates.hiddenSize
              const d = dOut.view().subarray(0, n),
                values = y.view().subarray(0, n)
              addColumnGrads(d, values, M, gates.hiddenGrads())
              values.set(d)
              scaleColumns(values, M, gates.hiddenGates())
            },
          }
        : {}),
      weightGrads: async () => {},
      async inputGrad(role: LlamaLinear, dx: ArenaTensor, M: number): Promise<void> {
        const u = unit(role)
        if (!u) return
        const dy = dx.view().subarray(0, M * u.z.length * u.width)
        const g = new Float64Array(u.z.length)
        addGateGrads(dy, saved[role]!, M, g, u.width)
        const zSub = gates.z[u.sub]
        for (let j = 0; j < g.length; j++) {
          u.grads[j] += zSub * g[j]
          gates.gradZ[u.sub] += u.z[j] * g[j]
        }
        scaleUnits(dy, M, effective(u), u.width)
      },
    }
  }
}
