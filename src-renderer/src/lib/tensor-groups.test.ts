import { describe, expect, it } from 'vitest'
import type { TensorInfo, TensorRole } from '@contract/api'
import { OUTSIDE_BLOCKS_LABEL, filterGroups, groupTensors, shortTensorName, tensorMatches } from './tensor-groups'

function tensor(name: string, role: TensorRole, layer: number | null, dtype = 'F32'): TensorInfo {
  return { name, role, layer, dtype, shape: [4, 4], byteLength: 64 }
}

// File order deliberately not layer order: safetensors sorts names as strings (layers.10 before layers.2).
const tensors: TensorInfo[] = [
  tensor('model.embed_tokens.weight', 'embed', null),
  tensor('model.layers.10.mlp.down_proj.weight', 'down', 10, 'BF16'),
  tensor('model.layers.2.self_attn.q_proj.weight', 'q', 2),
  tensor('model.layers.2.mlp.down_proj.weight', 'down', 2, 'BF16'),
  tensor('model.norm.weight', 'final_norm', null),
  tensor('lm_head.weight', 'lm_head', null),
]

describe('groupTensors', () => {
  it('puts tensors outside the blocks first, then layers in numeric order, keeping file order inside', () => {
    const groups = groupTensors(tensors)
    expect(groups.map((g) => g.label)).toEqual([OUTSIDE_BLOCKS_LABEL, 'Layer 2', 'Layer 10'])
    expect(groups[0].tensors.map((t) => t.name)).toEqual([
      'model.embed_tokens.weight',
      'model.norm.weight',
      'lm_head.weight',
    ])
    expect(groups[1].tensors.map((t) => t.role)).toEqual(['q', 'down'])
    expect(groups.reduce((n, g) => n + g.tensors.length, 0)).toBe(tensors.length)
  })

  it('has no outside group when every tensor is in a block', () => {
    const groups = groupTensors(tensors.filter((t) => t.layer !== null))
    expect(groups.map((g) => g.key)).toEqual(['layer-2', 'layer-10'])
  })
})

describe('filtering', () => {
  it('matches name, role or dtype, ignoring case, and drops emptied groups', () => {
    const groups = groupTensors(tensors)
    expect(filterGroups(groups, 'DOWN').flatMap((g) => g.tensors.map((t) => t.name))).toEqual([
      'model.layers.2.mlp.down_proj.weight',
      'model.layers.10.mlp.down_proj.weight',
    ])
    expect(filterGroups(groups, 'bf16').map((g) => g.label)).toEqual(['Layer 2', 'Layer 10'])
    expect(filterGroups(groups, 'lm_head').map((g) => g.label)).toEqual([OUTSIDE_BLOCKS_LABEL])
    expect(filterGroups(groups, 'layers.1.mlp')).toEqual([])
    expect(filterGroups(groups, '   ')).toHaveLength(3)
  })

  it('requires every word to match something', () => {
    const q = tensors[2]
    expect(tensorMatches(q, 'layers.2 q')).toBe(true)
    expect(tensorMatches(q, 'layers.2 bf16')).toBe(false)
  })
})

describe('shortTensorName', () => {
  it('drops the block prefix for Hugging Face and GGUF names', () => {
    expect(shortTensorName({ name: 'model.layers.3.mlp.down_proj.weight', layer: 3 })).toBe('mlp.down_proj.weight')
    expect(shortTensorName({ name: 'blk.12.attn_q.weight', layer: 12 })).toBe('attn_q.weight')
    expect(shortTensorName({ name: 'transformer.h.0.attn.c_attn.weight', layer: 0 })).toBe('attn.c_attn.weight')
  })

  it('leaves names alone when the layer number is not a name segment', () => {
    expect(shortTensorName({ name: 'model.norm.weight', layer: null })).toBe('model.norm.weight')
    expect(shortTensorName({ name: 'weird_3_name', layer: 3 })).toBe('weird_3_name')
  })
})
