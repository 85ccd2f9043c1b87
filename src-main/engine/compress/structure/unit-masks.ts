// The units structured pruning removes from a Llama-family block, what each costs in parameters, and the
// loss of sub-models with some units masked out.
// - A head group is one key/value head with the query heads that share it (under plain multi-head
//   attention, one head): removing it physically keeps the query/key-value ratio every layer must share.
// - A neuron is one MLP intermediate channel: a gate row, an up row and a down column.
// Masking zeroes a unit's contribution in the forward pass (its heads' attention output before o_proj, its
// neuron's input to down_proj), which is exactly what removing it computes; the forward code is untouched,
// the masks ride on its hooks. Many sub-models run in one batch: each gets its own copy of the windows.

import { layerIntermediateSize } from '../../arch'
import { WhittleError } from '../../errors'
import type { CausalLM, ForwardHooks } from '../../forward'
import type { LoadedModel } from '../../model/loaded-model'

export interface UnitLayout {
  layers: number
  /** Head groups per layer (key/value heads). */
  groups: number
  /** Query heads per group. */
  headsPerGroup: number
  headDim: number
  /** MLP neurons of each layer. */
  neurons: number[]
  /** Parameters one group holds: its q rows, k and v rows, o columns, and q/k/v bias entries. */
  groupParams: number
  /** Parameters one neuron holds: its gate and up rows, its down column, and gate/up bias entries. */
  neuronParams: number
}

/** A sub-model: per layer, 1 for each kept group and neuron, 0 for each removed one. */
export interface UnitMask {
  groups: Uint8Array[]
  neurons: Uint8Array[]
}

/** The prunable units of a Llama-family model; other families are refused, naming the model. */
export function unitLayout(model: LoadedModel): UnitLayout {
  const a = model.arch
  if (a.family !== 'llama')
    throw new WhittleError(
      'unsupported',
      model.files.path,
      `structured head and neuron pruning supports the Llama family (llama, mistral, qwen2), not ${a.family}`,
    )
  if (a.slicing)
    throw new WhittleError(
      'unsupported',
      model.files.path,
      'structured head and neuron pruning of a SliceGPT-sliced model is not supported; prune before slicing',
    )
  const g = a.heads / a.kvHeads
  const H = a.hiddenSize,
    hd = a.headDim
  const bias = new Set(
    Object.values(a.places)
      .filter((p) => p.bias && p.layer === 0)
      .map((p) => p.role),
  )
  const b = (role: 'q' | 'k' | 'v' | 'gate' | 'up'): number => (bias.has(role) ? 1 : 0)
  return {
    layers: a.layers,
    groups: a.kvHeads,
    headsPerGroup: g,
    headDim: hd,
    neurons: Array.from({ length: a.layers }, (_, l) => layerIntermediateSize(a, l)),
    groupParams: g * hd * (H + b('q')) + hd * (H + b('k')) + hd * (H + b('v')) + H * g * hd,
    neuronParams: H + b('gate') + H + b('up') + H,
  }
}

/** Every unit kept. */
export function fullMask(layout: UnitLayout): UnitMask {
  return {
    groups: Array.from({ length: layout.layers }, () => new Uint8Array(layout.groups).fill(1)),
    neurons: layout.neurons.map((n) => new Uint8Array(n).fill(1)),
  }
}

/** Parameters a mask removes. */
export function removedParams(layout: UnitLayout, mask: UnitMask): number {
  let groups = 0,
    neurons = 0
  for (const m of mask.groups) for (const k of m) groups += 1 - k
  for (const m of mask.neurons) for (const k of m) neurons += 1 - k
  return groups * layout.groupParams + neurons * layout.neuronParams
}

/** What a masked unit contributes after masking: per layer, the summed |value| of each group and neuron. */
interface ActivationSums {
  groups: Float64Array[]
  neurons: Float64Array[]
}

/**
 * Hooks that apply mask i to the rows of windows [i·perMask, (i+1)·perMask) of a batch of T-token windows,
 * and, given `sums`, add up what each unit contributes after masking.
 */
function maskHooks(
  layout: UnitLayout,
  masks: UnitMask[],
  perMask: number,
  T: number,
  sums?: ActivationSums,
): ForwardHooks {
  // Blocks run their passes in order, each hook once per pass: a row counter per layer and hook
  // says which windows a call holds.
  const attRow = new Array<number>(layout.layers).fill(0)
  const downRow = new Array<number>(layout.layers).fill(0)
  const groupWidth = layout.headsPerGroup * layout.headDim
  const qDim = layout.groups * groupWidth
  return {
    attentionOutput(layer, att, M) {
      const first = attRow[layer]
      attRow[layer] += M
      for (let r = 0; r < M; r++) {
        const keep = masks[Math.floor((first + r) / T / perMask)].groups[layer]
        for (let j = 0; j < keep.length; j++)
          if (!keep[j]) att.fill(0, r * qDim + j * groupWidth, r * qDim + (j + 1) * groupWidth)
      }
      if (sums) {
        const g = sums.groups[layer]
        for (let r = 0; r < M; r++)
          for (let j = 0; j < layout.groups; j++) {
            let s = 0
            for (let c = r * qDim + j * groupWidth; c < r * qDim + (j + 1) * groupWidth; c++) s += Math.abs(att[c])
            g[j] += s
          }
      }
    },
    linearInput(layer, role, x, M, K) {
      if (role !== 'down') return
      const first = downRow[layer]
      downRow[layer] += M
      for (let r = 0; r < M; r++) {
        const keep = masks[Math.floor((first + r) / T / perMask)].neurons[layer]
        for (let c = 0; c < K; c++) if (!keep[c]) x[r * K + c] = 0
      }
      if (sums) {
        const n = sums.neurons[layer]
        for (let r = 0; r < M; r++) for (let c = 0; c < K; c++) n[c] += Math.abs(x[r * K + c])
      }
    },
  }
}

/**
 * The mean next-token NLL of each sub-model over `windows` (the same windows for every mask), running the
 * sub-models together in batches of about `batchWindows` windows.
 */
export async function subModelLosses(
  forward: CausalLM,
  layout: UnitLayout,
  windows: Int32Array[],
  masks: UnitMask[],
  options: { batchWindows?: number; signal?: AbortSignal } = {},
): Promise<number[]> {
  const T = windows[0]?.length ?? 0
  if (T < 2) throw new WhittleError('validation', null, 'sub-model losses need windows of at least 2 tokens')
  const perBatch = Math.max(1, Math.floor((options.batchWindows ?? 64) / windows.length))
  const losses: number[] = []
  for (let i0 = 0; i0 < masks.length; i0 += perBatch) {
    const batch = masks.slice(i0, i0 + perBatch)
    const rows = await forward.windowNll(
      batch.flatMap(() => windows),
      { hooks: maskHooks(layout, batch, windows.length, T), signal: options.signal },
    )
    for (let i = 0; i < batch.length; i++) {
      let sum = 0,
        n = 0
      for (const row of rows.slice(i * windows.length, (i + 1) * windows.length))
        for (const v of row) {
          sum += v
          n++
        }
      losses.push(sum / n)
    }
  }
  return losses
}

/**
 * The mean |activation| of each unit in the sub-model `mask` over `windows`: a group's attention output
 * (summed over its heads' channels), a neuron's input to down_proj. Bonsai's prior: units that carry
 * little are the candidates its sampling explores.
 */
export async function unitActivations(
  forward: CausalLM,
  layout: UnitLayout,
  windows: Int32Array[],
  mask: UnitMask,
  signal?: AbortSignal,
): Promise<{ groups: Float64Array[]; neurons: Float64Array[] }> {
  const T = windows[0]?.length ?? 0
  if (T < 2) throw new WhittleError('validation', null, 'unit activations need windows of at least 2 tokens')
  const sums: ActivationSums = {
    groups: Array.from({ length: layout.layers }, () => new Float64Array(layout.groups)),
    neurons: layout.neurons.map((n) => new Float64Array(n)),
  }
  await forward.windowNll(windows, { hooks: maskHooks(layout, [mask], windows.length, T, sums), signal })
  const rows = windows.length * T
  return {
    groups: sums.groups.map((g) => g.map((v) => v / rows)),
    neurons: sums.neurons.map((n) => n.map((v) => v / rows)),
  }
}
