// The Q4_K_M / Q4_K_S mixes on a synthetic 2-layer Llama, and use_more_bits on a 32-layer stack.
// Rules (llama.cpp llama_tensor_get_type):
//   norms -> F32; output -> Q6_K;
//   Q4_K_M: attn_v and ffn_down -> Q6_K where use_more_bits(layer, n) (i < n/8, i >= 7n/8, (i - n/8) % 3 == 2), else Q4_K;
//   Q4_K_S: attn_v of layers < 4 and ffn_down of layers < n/8 -> Q5_K, else Q4_K.

import { describe, expect, it } from 'vitest'
import type { TensorRole } from '../../../contract/api'
import { policyType, useMoreBits } from './type-policy'

const layerRoles: TensorRole[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down']

function mix(type: 'Q4_K_M' | 'Q4_K_S'): Record<string, string> {
  const out: Record<string, string> = {}
  out.token_embd = policyType(type, { role: 'embed', layer: null, rank: 2 }, 2)
  out.output = policyType(type, { role: 'lm_head', layer: null, rank: 2 }, 2)
  out.output_norm = policyType(type, { role: 'final_norm', layer: null, rank: 1 }, 2)
  for (let layer = 0; layer < 2; layer++) {
    for (const role of layerRoles) out[`${layer}.${role}`] = policyType(type, { role, layer, rank: 2 }, 2)
    out[`${layer}.attn_norm`] = policyType(type, { role: 'attn_norm', layer, rank: 1 }, 2)
  }
  return out
}

describe('GGUF mix policy', () => {
  it('use_more_bits picks the first and last eighth and every third layer between', () => {
    const picked = Array.from({ length: 32 }, (_, i) => i).filter((i) => useMoreBits(i, 32))
    // n/8 = 4, 7n/8 = 28: layers 0-3, 28-31, and 4 + 3k + 2 = 6, 9, ..., 27.
    expect(picked).toEqual([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
    // With 2 layers n/8 = 0 and 7n/8 = 1: only layer 1.
    expect([0, 1].map((i) => useMoreBits(i, 2))).toEqual([false, true])
  })

  it('Q4_K_M on 2 layers', () => {
    const m = mix('Q4_K_M')
    expect(m.output).toBe('Q6_K')
    expect(m.token_embd).toBe('Q4_K')
    expect(m.output_norm).toBe('F32')
    expect(m['0.attn_norm']).toBe('F32')
    expect(m['0.v']).toBe('Q4_K')
    expect(m['1.v']).toBe('Q6_K')
    expect(m['0.down']).toBe('Q4_K')
    expect(m['1.down']).toBe('Q6_K')
    for (const role of ['q', 'k', 'o', 'gate', 'up']) for (const l of [0, 1]) expect(m[`${l}.${role}`]).toBe('Q4_K')
  })

  it('Q4_K_S on 2 layers', () => {
    const m = mix('Q4_K_S')
    expect(m.output).toBe('Q6_K')
    expect(m['0.v']).toBe('Q5_K')
    expect(m['1.v']).toBe('Q5_K')
    // n/8 = 0: no ffn_down upgrade.
    expect(m['0.down']).toBe('Q4_K')
    expect(m['1.down']).toBe('Q4_K')
    expect(m['1.q']).toBe('Q4_K')
  })

  it('Q4_K_S on 32 layers: ffn_down of the first eighth and attn_v of the first 4 get Q5_K', () => {
    const t = (role: TensorRole, layer: number): string => policyType('Q4_K_S', { role, layer, rank: 2 }, 32)
    expect([0, 3, 4, 31].map((l) => t('down', l))).toEqual(['Q5_K', 'Q5_K', 'Q4_K', 'Q4_K'])
    expect([0, 3, 4].map((l) => t('v', l))).toEqual(['Q5_K', 'Q5_K', 'Q4_K'])
  })

  it('plain types apply to every 2-D tensor, F32 to 1-D', () => {
    expect(policyType('Q8_0', { role: 'lm_head', layer: null, rank: 2 }, 2)).toBe('Q8_0')
    expect(policyType('BF16', { role: 'ffn_norm', layer: 0, rank: 1 }, 2)).toBe('F32')
  })
})
