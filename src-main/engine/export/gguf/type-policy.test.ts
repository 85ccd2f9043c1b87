// llama.cpp's per-tensor type policy (llama_tensor_get_type), checked two ways:
// - against llama-quantize itself: the golden mixes in ../shared/reference/gguf-golden/imatrix record the
//   type llama-quantize chose for each tensor of small-llama (2 layers, 4 query heads, 2 K/V heads);
// - against rules worked by hand from llama-quant.cpp for synthetic Llamas (8 and 32 layers, with and
//   without grouped K/V heads), asserting the rule names, the counters and the fallbacks.

import { existsSync } from 'node:fs'
import path from 'node:path'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TensorRole } from '../../../contract/api'
import { GGUF_MIXES, type GgufMix, type GgufTensorPlan } from '../../../contract/gguf-export-types'
import { WhittleError } from '../../errors'
import { readGguf } from '../../formats/gguf'
import { ggmlTypeById } from '../../formats/ggml-types'
import { loadModel } from '../../model/loaded-model'
import { SKIP_SHARED, shared } from '../../testing/shared-data'
import { WorkerPool } from '../../pool/worker-pool'
import { exportGguf, planGgufExport } from './export-gguf'
import {
  planGgufTypes,
  policyType,
  useMoreBits,
  type GgufPlanOptions,
  type PolicyModel,
  type PolicyTensor,
} from './type-policy'

const golden = shared('reference', 'gguf-golden')
const hasGolden = existsSync(path.join(golden, 'imatrix/small-llama-imatrix-mix-Q4_K_M.gguf'))
if (!hasGolden) console.warn(`skipping the policy-against-llama-quantize tests: ${golden}: ${SKIP_SHARED}`)

/** A synthetic Llama's GGUF tensors: embedding, per-layer weights and norms, final norm, output. */
function llama(layers: number, dim = 256, ffn = 768, kvDim = 128, vocab = 512): PolicyTensor[] {
  const t = (name: string, rows: number, cols: number, rank = 2): PolicyTensor => ({
    name,
    rank,
    rows,
    cols,
    sourceType: 'F32',
  })
  const out = [t('token_embd.weight', vocab, dim)]
  for (let i = 0; i < layers; i++) {
    out.push(
      t(`blk.${i}.attn_q.weight`, dim, dim),
      t(`blk.${i}.attn_k.weight`, kvDim, dim),
      t(`blk.${i}.attn_v.weight`, kvDim, dim),
      t(`blk.${i}.attn_output.weight`, dim, dim),
      t(`blk.${i}.ffn_gate.weight`, ffn, dim),
      t(`blk.${i}.ffn_up.weight`, ffn, dim),
      t(`blk.${i}.ffn_down.weight`, dim, ffn),
      t(`blk.${i}.attn_norm.weight`, 1, dim, 1),
      t(`blk.${i}.ffn_norm.weight`, 1, dim, 1),
    )
  }
  out.push(t('output_norm.weight', 1, dim, 1), t('output.weight', vocab, dim))
  return out
}

function plan(tensors: PolicyTensor[], model: PolicyModel, options: GgufPlanOptions): Record<string, GgufTensorPlan> {
  return Object.fromEntries(planGgufTypes(tensors, model, options).map((p) => [p.name, p]))
}

/** `blk.i.part.weight` → "type rule" for layers 0..n-1. */
function column(p: Record<string, GgufTensorPlan>, part: string, n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => `${p[`blk.${i}.${part}.weight`].type} ${p[`blk.${i}.${part}.weight`].rule}`,
  )
}

const GQA4: PolicyModel = { layers: 8, heads: 8, kvHeads: 2, experts: 1 }
const GQA2: PolicyModel = { layers: 8, heads: 4, kvHeads: 2, experts: 1 }

describe('use_more_bits', () => {
  it('picks the first and last eighth and every third layer between', () => {
    const picked = (n: number): number[] => Array.from({ length: n }, (_, i) => i).filter((i) => useMoreBits(i, n))
    // n/8 = 4, 7n/8 = 28: layers 0-3, 28-31, and 4 + 3k + 2 = 6, 9, ..., 27.
    expect(picked(32)).toEqual([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
    // n/8 = 1, 7n/8 = 7: 0, 7, and (i - 1) % 3 == 2 at 3 and 6.
    expect(picked(8)).toEqual([0, 3, 6, 7])
    // n/8 = 0, 7n/8 = 1: only layer 1.
    expect(picked(2)).toEqual([1])
  })
})

describe.skipIf(!hasGolden)('the policy against llama-quantize (small-llama golden mixes)', () => {
  for (const mix of ['Q4_K_M', 'Q3_K_M'] as const) {
    it(`${mix}: every tensor gets the type llama-quantize chose`, async () => {
      const want = await readGguf(path.join(golden, `imatrix/small-llama-imatrix-mix-${mix}.gguf`))
      const model = await loadModel(path.join(golden, 'small-llama-f32.gguf'))
      const got = planGgufExport(model, { type: mix })
      const byName = new Map(got.tensors.map((t) => [t.name, t.type]))
      expect([...byName.keys()].sort()).toEqual(want.infos.map((i) => i.name).sort())
      for (const info of want.infos)
        expect(`${info.name} ${byName.get(info.name)}`).toBe(`${info.name} ${ggmlTypeById(info.ggmlType)?.name}`)
    })
  }
})

describe.skipIf(!hasGolden)(
  "every mix exports: the written file has the planned types and llama.cpp's file type",
  () => {
    let pool: WorkerPool
    let tmp: string
    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 0 })
      tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-mixes-'))
    })
    afterAll(async () => {
      await pool?.close()
      await rm(tmp, { recursive: true, force: true })
    })

    it('Q2_K_MIX, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M from small-llama F32', async () => {
      const model = await loadModel(path.join(golden, 'small-llama-f32.gguf'))
      const fileTypes: Record<string, number> = {
        Q2_K_MIX: 10,
        Q3_K_S: 11,
        Q3_K_M: 12,
        Q3_K_L: 13,
        Q4_K_S: 14,
        Q4_K_M: 15,
        Q5_K_S: 16,
        Q5_K_M: 17,
      }
      for (const mix of GGUF_MIXES) {
        const plan = planGgufExport(model, { type: mix })
        const out = path.join(tmp, `${mix}.gguf`)
        const report = await exportGguf(pool, model, out, { type: mix })
        const g = await readGguf(out)
        expect(g.metadata['general.file_type'], mix).toBe(fileTypes[mix])
        const written = Object.fromEntries(g.infos.map((i) => [i.name, ggmlTypeById(i.ggmlType)?.name]))
        for (const t of plan.tensors) expect(`${mix} ${t.name} ${written[t.name]}`).toBe(`${mix} ${t.name} ${t.type}`)
        expect(report.tensors.map((t) => `${t.name} ${t.rule}`).sort()).toEqual(
          plan.tensors.map((t) => `${t.name} ${t.rule}`).sort(),
        )
        // The mixes differ from one another: each is not just its base type.
        expect(new Set(plan.tensors.map((t) => t.type)).size, mix).toBeGreaterThan(2)
      }
    })
  },
)

describe('the mixes on an 8-layer Llama with 4 query heads per K/V head, rules worked by hand', () => {
  const tensors = llama(8)

  it('Q2_K mix: attn_v Q4_K (GQA ≥ 4), ffn_down and attn_output Q3_K, output Q6_K, the rest Q2_K', () => {
    const p = plan(tensors, GQA4, { type: 'Q2_K_MIX' })
    expect(new Set(column(p, 'attn_v', 8))).toEqual(new Set(['Q4_K attn_v-gqa']))
    expect(new Set(column(p, 'ffn_down', 8))).toEqual(new Set(['Q3_K ffn_down-q2_k']))
    expect(new Set(column(p, 'attn_output', 8))).toEqual(new Set(['Q3_K attn_output-q2_k']))
    for (const part of ['attn_q', 'attn_k', 'ffn_gate', 'ffn_up'])
      expect(new Set(column(p, part, 8))).toEqual(new Set(['Q2_K base-type']))
    expect([p['output.weight'].type, p['output.weight'].rule]).toEqual(['Q6_K', 'output-q6_k'])
    expect([p['token_embd.weight'].type, p['token_embd.weight'].rule]).toEqual(['Q2_K', 'base-type'])
    expect([p['blk.3.attn_norm.weight'].type, p['blk.3.attn_norm.weight'].rule]).toEqual(['F32', 'not-quantized'])
    // With 2 query heads per K/V head, attn_v gets Q3_K instead.
    expect(new Set(column(plan(tensors, GQA2, { type: 'Q2_K_MIX' }), 'attn_v', 8))).toEqual(
      new Set(['Q3_K attn_v-q2_k']),
    )
  })

  it('Q3_K_S: Q3_K everywhere but output', () => {
    const p = plan(tensors, GQA4, { type: 'Q3_K_S' })
    for (const part of ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'])
      expect(new Set(column(p, part, 8))).toEqual(new Set(['Q3_K base-type']))
    expect(p['output.weight'].type).toBe('Q6_K')
  })

  it('Q3_K_M: attn_v Q5_K in the first 2 layers then Q4_K; ffn_down and attn_output Q4_K (8/16 = 0 layers get Q5_K)', () => {
    const p = plan(tensors, GQA4, { type: 'Q3_K_M' })
    expect(column(p, 'attn_v', 8)).toEqual([
      ...Array(2).fill('Q5_K attn_v-first-2'),
      ...Array(6).fill('Q4_K attn_v-q3_k_m'),
    ])
    expect(new Set(column(p, 'ffn_down', 8))).toEqual(new Set(['Q4_K ffn_down-q3_k_m']))
    expect(new Set(column(p, 'attn_output', 8))).toEqual(new Set(['Q4_K attn_output-q3_k_m']))
    expect(new Set(column(p, 'ffn_up', 8))).toEqual(new Set(['Q3_K base-type']))
  })

  it('Q3_K_M on 32 layers: ffn_down of the first 32/16 = 2 layers gets Q5_K', () => {
    const p = plan(llama(32), { ...GQA4, layers: 32 }, { type: 'Q3_K_M' })
    expect(column(p, 'ffn_down', 4)).toEqual([
      'Q5_K ffn_down-first-sixteenth',
      'Q5_K ffn_down-first-sixteenth',
      'Q4_K ffn_down-q3_k_m',
      'Q4_K ffn_down-q3_k_m',
    ])
  })

  it('Q3_K_L: attn_v, ffn_down and attn_output Q5_K', () => {
    const p = plan(tensors, GQA4, { type: 'Q3_K_L' })
    expect(new Set(column(p, 'attn_v', 8))).toEqual(new Set(['Q5_K attn_v-q3_k_l']))
    expect(new Set(column(p, 'ffn_down', 8))).toEqual(new Set(['Q5_K ffn_down-q3_k_l']))
    expect(new Set(column(p, 'attn_output', 8))).toEqual(new Set(['Q5_K attn_output-q3_k_l']))
    expect(new Set(column(p, 'attn_q', 8))).toEqual(new Set(['Q3_K base-type']))
  })

  it('Q4_K_S: attn_v of the first 4 layers and ffn_down of the first 8/8 = 1 layer get Q5_K', () => {
    const p = plan(tensors, GQA4, { type: 'Q4_K_S' })
    expect(column(p, 'attn_v', 8)).toEqual([
      ...Array(4).fill('Q5_K attn_v-first-4'),
      ...Array(4).fill('Q4_K base-type'),
    ])
    expect(column(p, 'ffn_down', 8)).toEqual(['Q5_K ffn_down-first-eighth', ...Array(7).fill('Q4_K base-type')])
    expect(new Set(column(p, 'attn_output', 8))).toEqual(new Set(['Q4_K base-type']))
  })

  for (const [mix, base] of [
    ['Q4_K_M', 'Q4_K'],
    ['Q5_K_M', 'Q5_K'],
  ] as const) {
    it(`${mix}: attn_v and ffn_down get Q6_K in layers 0, 3, 6, 7 (use_more_bits), ${base} elsewhere`, () => {
      const p = plan(tensors, GQA4, { type: mix })
      const want = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ([0, 3, 6, 7].includes(i) ? 'Q6_K' : base))
      expect(column(p, 'attn_v', 8)).toEqual(want.map((t) => `${t} ${t === 'Q6_K' ? 'attn_v-more-bits' : 'base-type'}`))
      expect(column(p, 'ffn_down', 8)).toEqual(
        want.map((t) => `${t} ${t === 'Q6_K' ? 'ffn_down-more-bits' : 'base-type'}`),
      )
      expect(p['output.weight'].type).toBe('Q6_K')
      expect(p['token_embd.weight'].type).toBe(base)
    })
  }

  it("Q5_K_S: Q5_K everywhere but output; Q6_K (a pure type, and llama.cpp's Q6_K mix): Q6_K everywhere", () => {
    const s = plan(tensors, GQA4, { type: 'Q5_K_S' })
    expect(
      new Set(
        Object.values(s)
          .filter((t) => t.name !== 'output.weight' && t.rule !== 'not-quantized')
          .map((t) => `${t.type} ${t.rule}`),
      ),
    ).toEqual(new Set(['Q5_K base-type']))
    const six = plan(tensors, GQA4, { type: 'Q6_K' })
    expect(
      new Set(
        Object.values(six)
          .filter((t) => t.rule !== 'not-quantized')
          .map((t) => `${t.type} ${t.rule}`),
      ),
    ).toEqual(new Set(['Q6_K pure']))
  })

  it('a 70B Llama (80 layers, grouped K/V) raises attn_v from Q4_K to Q5_K; 8 experts put attn_v and attn_k at Q8_0', () => {
    const p = plan(llama(80), { layers: 80, heads: 64, kvHeads: 8, experts: 1 }, { type: 'Q3_K_M' })
    expect(column(p, 'attn_v', 3)).toEqual(['Q5_K attn_v-first-2', 'Q5_K attn_v-first-2', 'Q5_K attn_v-70b'])
    const moe = plan(tensors, { ...GQA4, experts: 8 }, { type: 'Q4_K_M' })
    expect(new Set(column(moe, 'attn_v', 8))).toEqual(new Set(['Q8_0 attn_v-8-experts']))
    expect(new Set(column(moe, 'attn_k', 8))).toEqual(new Set(['Q8_0 attn_k-8-experts']))
    expect(new Set(column(moe, 'attn_output', 8))).toEqual(new Set(['Q5_K attn_output-8-experts']))
  })

  it('the plan does not depend on the order the tensors are listed in (llama.cpp sorts by layer, then name)', () => {
    const shuffled = [...tensors].reverse()
    for (const mix of GGUF_MIXES) {
      const a = planGgufTypes(tensors, GQA4, { type: mix as GgufMix })
      const b = planGgufTypes(shuffled, GQA4, { type: mix as GgufMix }).reverse()
      expect(b).toEqual(a)
    }
  })
})

describe('fallbacks: rows that are not a whole number of blocks (llama.cpp tensor_type_fallback)', () => {
  // ffn_down rows of 352 = 11 × 32 elements: no 256-element type fits, every 32-element one does.
  const tensors = llama(8, 256, 352)
  const down = (o: GgufPlanOptions): GgufTensorPlan => plan(tensors, GQA4, o)['blk.1.ffn_down.weight']

  it("each 256-element type falls back to llama.cpp's choice, and the plan says why", () => {
    const cases = [
      ['Q4_K', 'Q5_0'],
      ['Q5_K', 'Q5_1'],
      ['Q6_K', 'Q8_0'],
      ['Q3_K', 'Q4_0'],
      ['Q2_K', 'Q4_0'],
      ['IQ4_XS', 'IQ4_NL'],
      ['TQ1_0', 'Q4_0'],
      ['TQ2_0', 'Q4_0'],
    ] as const
    for (const [asked, got] of cases) {
      const d = down({ type: asked })
      expect([d.type, d.fallback?.from]).toEqual([got, asked])
      expect(d.fallback?.reason).toContain('352')
    }
    // A mix's upgraded type falls back too: Q4_K_M's ffn_down in layer 0 asks for Q6_K, layer 1 for Q4_K.
    const p = plan(tensors, GQA4, { type: 'Q4_K_M' })
    expect([
      p['blk.0.ffn_down.weight'].type,
      p['blk.0.ffn_down.weight'].rule,
      p['blk.0.ffn_down.weight'].fallback?.from,
    ]).toEqual(['Q8_0', 'ffn_down-more-bits', 'Q6_K'])
    expect([p['blk.1.ffn_down.weight'].type, p['blk.1.ffn_down.weight'].fallback?.from]).toEqual(['Q5_0', 'Q4_K'])
    // Rows the 256-element types fit are left alone.
    expect(p['blk.1.ffn_up.weight'].fallback).toBeUndefined()
  })

  it('rows no block type fits end in F16; output rows that the base type does not fit get Q8_0 by their own rule', () => {
    const odd = llama(2, 100, 200, 100, 50)
    const p = plan(odd, { layers: 2, heads: 1, kvHeads: 1, experts: 1 }, { type: 'Q4_K_M' })
    expect([p['blk.0.attn_q.weight'].type, p['blk.0.attn_q.weight'].fallback?.from]).toEqual(['F16', 'Q4_K'])
    // output: 100 % 256 != 0 → Q8_0 (output-q8_0), which still does not fit 100 → F16.
    expect([p['output.weight'].rule, p['output.weight'].fallback?.from, p['output.weight'].type]).toEqual([
      'output-q8_0',
      'Q8_0',
      'F16',
    ])
    const fits = plan(llama(2, 288, 768, 288, 50), { layers: 2, heads: 1, kvHeads: 1, experts: 1 }, { type: 'Q4_K_M' })
    expect([fits['output.weight'].type, fits['output.weight'].rule, fits['output.weight'].fallback]).toEqual([
      'Q8_0',
      'output-q8_0',
      undefined,
    ])
  })
})

describe("llama-quantize's type-level flags", () => {
  const tensors = llama(8)

  it('--pure gives every quantized tensor the base type, output included', () => {
    const p = plan(tensors, GQA4, { type: 'Q4_K_M', pure: true })
    expect(
      new Set(
        Object.values(p)
          .filter((t) => t.rule !== 'not-quantized')
          .map((t) => `${t.type} ${t.rule}`),
      ),
    ).toEqual(new Set(['Q4_K pure']))
  })

  it('--output-tensor-type and --token-embedding-type win over the mix, --pure and a float export type', () => {
    for (const o of [{ type: 'Q4_K_M' }, { type: 'Q4_K_M', pure: true }, { type: 'F16' }] as const) {
      const p = plan(tensors, GQA4, { ...o, outputTensorType: 'Q8_0', tokenEmbeddingType: 'Q4_0' })
      expect([p['output.weight'].type, p['output.weight'].rule]).toEqual(['Q8_0', 'output-tensor-type'])
      expect([p['token_embd.weight'].type, p['token_embd.weight'].rule]).toEqual(['Q4_0', 'token-embedding-type'])
    }
  })

  it('--leave-output-tensor keeps the source type of output.weight', () => {
    const source = tensors.map((t) => (t.name === 'output.weight' ? { ...t, sourceType: 'BF16' } : t))
    const p = plan(source, GQA4, { type: 'Q4_K_M', leaveOutputTensor: true })
    expect([p['output.weight'].type, p['output.weight'].rule]).toEqual(['BF16', 'leave-output'])
    const quantized = tensors.map((t) => (t.name === 'output.weight' ? { ...t, sourceType: 'Q6_K' } : t))
    expect(plan(quantized, GQA4, { type: 'Q2_K', leaveOutputTensor: true })['output.weight'].type).toBe('Q6_K')
  })

  it('--tensor-type: the first pattern that finds the name wins; overridden tensors do not advance the mix counters', () => {
    const p = plan(tensors, GQA4, {
      type: 'Q3_K_M',
      tensorTypes: [
        { pattern: 'blk\\.0\\.attn_v', type: 'Q8_0' },
        { pattern: 'attn_v', type: 'Q2_K' },
        { pattern: 'ffn_up', type: 'IQ4_NL' },
      ],
    })
    expect([p['blk.0.attn_v.weight'].type, p['blk.0.attn_v.weight'].rule, p['blk.0.attn_v.weight'].pattern]).toEqual([
      'Q8_0',
      'tensor-type',
      'blk\\.0\\.attn_v',
    ])
    expect(p['blk.5.attn_v.weight'].type).toBe('Q2_K')
    expect(new Set(column(p, 'ffn_up', 8))).toEqual(new Set(['IQ4_NL tensor-type']))
    // Only blk.0.attn_v overridden: llama.cpp's i_attention_wv then counts from blk.1, so blk.1 and blk.2 are
    // its "first 2" attn_v tensors.
    const q = plan(tensors, GQA4, { type: 'Q3_K_M', tensorTypes: [{ pattern: 'blk\\.0\\.attn_v', type: 'Q8_0' }] })
    expect(column(q, 'attn_v', 4)).toEqual([
      'Q8_0 tensor-type',
      'Q5_K attn_v-first-2',
      'Q5_K attn_v-first-2',
      'Q4_K attn_v-q3_k_m',
    ])
  })

  it('--tensor-type does not apply to a float export type (llama.cpp applies it to quantized types only)', () => {
    const p = plan(tensors, GQA4, { type: 'F16', tensorTypes: [{ pattern: 'attn_v', type: 'Q8_0' }] })
    expect(p['blk.0.attn_v.weight'].type).toBe('F16')
  })

  it("sizes: bytes and bits per weight follow each type's block geometry", () => {
    const p = plan(tensors, GQA4, { type: 'Q4_K_M' })
    // attn_q: 256 rows of one 256-element Q4_K block (144 bytes); attn_v of layer 0: Q6_K (210 bytes).
    expect([p['blk.1.attn_q.weight'].bytes, p['blk.1.attn_q.weight'].bitsPerWeight]).toEqual([256 * 144, 4.5])
    expect([p['blk.0.attn_v.weight'].bytes, p['blk.0.attn_v.weight'].bitsPerWeight]).toEqual([128 * 210, 6.5625])
    expect([p['output_norm.weight'].bytes, p['output_norm.weight'].bitsPerWeight]).toEqual([256 * 4, 32])
  })

  it('bad input is a typed validation error naming the problem', () => {
    const err = (o: GgufPlanOptions): unknown => {
      try {
        planGgufTypes(tensors, GQA4, o)
      } catch (e) {
        return e
      }
      return null
    }
    for (const [o, mention] of [
      [{ type: 'Q3_X' }, 'Q3_X'],
      [{ type: 'Q4_K_M', outputTensorType: 'Q9' }, 'Q9'],
      [{ type: 'Q4_K_M', tensorTypes: [{ pattern: 'attn_v(', type: 'Q8_0' }] }, 'attn_v('],
      [{ type: 'Q4_K_M', tensorTypes: [{ pattern: 'attn_v', type: 'IQ2_XXS' }] }, 'IQ2_XXS'],
    ] as const) {
      const e = err(o as unknown as GgufPlanOptions)
      expect(e).toBeInstanceOf(WhittleError)
      expect((e as WhittleError).code).toBe('validation')
      expect((e as WhittleError).message).toContain(mention)
    }
  })
})

describe('policyType (one tensor of a dense Llama, by role)', () => {
  it('agrees with the full plan for every role and mix on 8 layers', () => {
    const roles: [TensorRole, string][] = [
      ['q', 'attn_q'],
      ['k', 'attn_k'],
      ['v', 'attn_v'],
      ['o', 'attn_output'],
      ['gate', 'ffn_gate'],
      ['up', 'ffn_up'],
      ['down', 'ffn_down'],
    ]
    for (const mix of GGUF_MIXES) {
      const p = plan(llama(8), { layers: 8, heads: 1, kvHeads: 1, experts: 1 }, { type: mix })
      for (const [role, part] of roles)
        for (let l = 0; l < 8; l++)
          expect(policyType(mix, { role, layer: l, rank: 2 }, 8)).toBe(p[`blk.${l}.${part}.weight`].type)
      expect(policyType(mix, { role: 'lm_head', layer: null, rank: 2 }, 8)).toBe(p['output.weight'].type)
      expect(policyType(mix, { role: 'ffn_norm', layer: 0, rank: 1 }, 8)).toBe('F32')
    }
  })
})
