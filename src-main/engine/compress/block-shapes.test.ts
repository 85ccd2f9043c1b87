import { describe, expect, it } from 'vitest'
import type { TensorInfo, TensorRole } from '../../contract/api'
import type { TensorPlace } from '../arch/types'
import type { LoadedModel } from '../model/loaded-model'
import { blockShapes, blockWidths } from './block-shapes'

/** A stand-in model with only what block-shapes reads: per-layer Linear shapes by role. */
function fakeModel(
  blocks: { hidden: number; heads: number; kvHeads: number; mlp: number }[],
  headDim = 4,
  transposed = false,
): LoadedModel {
  const tensors: TensorInfo[] = []
  const places: Record<string, TensorPlace> = {}
  const add = (layer: number, role: TensorRole, out: number, inWidth: number): void => {
    const name = `layers.${layer}.${role}.weight`
    tensors.push({
      name,
      shape: transposed ? [inWidth, out] : [out, inWidth],
      dtype: 'F32',
      byteLength: 4 * out * inWidth,
      role,
      layer,
    })
    places[name] = { role, layer, transposed }
  }
  blocks.forEach((b, layer) => {
    add(layer, 'q', b.heads * headDim, b.hidden)
    add(layer, 'k', b.kvHeads * headDim, b.hidden)
    add(layer, 'o', b.hidden, b.heads * headDim)
    add(layer, 'gate', b.mlp, b.hidden)
    add(layer, 'down', b.hidden, b.mlp)
  })
  return { arch: { layers: blocks.length, headDim, places }, tensors } as unknown as LoadedModel
}

const base = { hidden: 16, heads: 4, kvHeads: 2, mlp: 40 }

describe('block shapes', () => {
  it('reads each block’s widths off its Linears, the other way round for Conv1D-style storage', () => {
    const w = blockWidths(fakeModel([base, { hidden: 12, heads: 2, kvHeads: 1, mlp: 24 }]))
    expect(w).toEqual([
      { hidden: 16, heads: 4, kvHeads: 2, intermediate: 40 },
      { hidden: 12, heads: 2, kvHeads: 1, intermediate: 24 },
    ])
    expect(blockWidths(fakeModel([base], 4, true))).toEqual([w[0]])
  })

  it('is null when no block changed, and lists every block beside the original when one did', () => {
    const source = fakeModel([base, base, base])
    expect(blockShapes(source, fakeModel([base, base, base]))).toBeNull()
    const result = fakeModel([base, { ...base, mlp: 30 }, { ...base, hidden: 10 }])
    expect(blockShapes(source, result)).toEqual([
      { layer: 0, hidden: [16, 16], heads: [4, 4], kvHeads: [2, 2], intermediate: [40, 40] },
      { layer: 1, hidden: [16, 16], heads: [4, 4], kvHeads: [2, 2], intermediate: [40, 30] },
      { layer: 2, hidden: [16, 10], heads: [4, 4], kvHeads: [2, 2], intermediate: [40, 40] },
    ])
  })

  it('compares a model with a dropped block against the source’s blocks, all alike', () => {
    const source = fakeModel([base, base, base])
    expect(blockShapes(source, fakeModel([base, base]))).toBeNull()
    expect(blockShapes(source, fakeModel([base, { ...base, heads: 2, kvHeads: 1 }]))?.[1]).toEqual({
      layer: 1,
      hidden: [16, 16],
      heads: [4, 2],
      kvHeads: [2, 1],
      intermediate: [40, 40],
    })
  })
})
