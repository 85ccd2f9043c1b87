// The Export dialog's GGUF options: the flags the form makes (checked by the same contract parser the CLI
// uses), a mix-table click turning into an exact per-tensor pattern that wins, and the fallback warning.

import { describe, expect, it } from 'vitest'
import type { GgufExportPlan, GgufTensorPlan } from '@contract/gguf-export-types'
import { exportSpec } from '../../stores/export'
import { emptyGgufOptions, exactPattern, fallbackSummary, ggufFlagsFrom, withTensorOverride } from './gguf-options'

describe('GGUF options form', () => {
  it('an untouched form asks for no flags, and the export request then carries none', () => {
    expect(ggufFlagsFrom(emptyGgufOptions())).toEqual({ flags: {} })
    const form = {
      format: 'gguf' as const,
      ggufType: 'Q4_K_M',
      gptqFormat: 'gptq' as const,
      dtype: '' as const,
      out: '/x',
      gguf: {},
    }
    expect(exportSpec('m', form)).toEqual({ modelId: 'm', format: 'gguf', out: '/x', ggufType: 'Q4_K_M' })
  })

  it('each field becomes its flag; the request carries them for gguf only', () => {
    const r = ggufFlagsFrom({
      pure: true,
      outputTensorType: 'Q8_0',
      tokenEmbeddingType: 'Q4_0',
      leaveOutputTensor: false,
      allowRequantize: true,
      tensorTypes: 'attn_v=q8_0\n\n ffn_up=IQ4_NL ',
    })
    expect(r).toEqual({
      flags: {
        pure: true,
        outputTensorType: 'Q8_0',
        tokenEmbeddingType: 'Q4_0',
        allowRequantize: true,
        tensorTypes: [
          { pattern: 'attn_v', type: 'Q8_0' },
          { pattern: 'ffn_up', type: 'IQ4_NL' },
        ],
      },
    })
    const flags = 'flags' in r ? r.flags : {}
    const form = {
      format: 'gguf' as const,
      ggufType: 'Q4_K_M',
      gptqFormat: 'gptq' as const,
      dtype: '' as const,
      out: '/x',
      gguf: flags,
    }
    expect(exportSpec('m', form)).toEqual({ modelId: 'm', format: 'gguf', out: '/x', ggufType: 'Q4_K_M', gguf: flags })
    expect(exportSpec('m', { ...form, format: 'safetensors' })).toEqual({
      modelId: 'm',
      format: 'safetensors',
      out: '/x',
    })
  })

  it('problems are named: a bad line, a bad type, keeping and retyping output.weight at once', () => {
    const f = emptyGgufOptions()
    expect(ggufFlagsFrom({ ...f, tensorTypes: 'attn_v' })).toEqual({
      problem: 'per-tensor types: "attn_v" is not PATTERN=TYPE',
    })
    expect(ggufFlagsFrom({ ...f, tensorTypes: 'attn_v=Q9' })).toMatchObject({
      problem: expect.stringContaining('"Q9" is not a GGUF type'),
    })
    expect(ggufFlagsFrom({ ...f, tensorTypes: '(=Q8_0' })).toMatchObject({
      problem: expect.stringContaining('not a valid regular expression'),
    })
    expect(ggufFlagsFrom({ ...f, leaveOutputTensor: true, outputTensorType: 'Q8_0' })).toHaveProperty('problem')
  })

  it('a click in the mix table adds an exact pattern first (first match wins), replacing an earlier click on the same tensor', () => {
    const name = 'blk.1.attn_v.weight'
    const p = exactPattern(name)
    expect(new RegExp(p).test(name)).toBe(true)
    expect(new RegExp(p).test('blk.11.attn_v.weight')).toBe(false)
    expect(new RegExp(p).test('blk.1xattn_v.weight')).toBe(false)
    let lines = withTensorOverride('attn_v=Q4_0', name, 'Q8_0')
    lines = withTensorOverride(lines, name, 'Q6_K')
    expect(lines).toBe(`${p}=Q6_K\nattn_v=Q4_0`)
    const r = ggufFlagsFrom({ ...emptyGgufOptions(), tensorTypes: lines })
    expect('flags' in r && r.flags.tensorTypes?.[0]).toEqual({ pattern: p, type: 'Q6_K' })
  })

  it('fallbacks are counted over the quantized tensors, grouped by type pair, and "most" past half', () => {
    const t = (name: string, type: GgufTensorPlan['type'], from?: GgufTensorPlan['type']): GgufTensorPlan => ({
      name,
      type,
      rule: type === 'F32' ? 'not-quantized' : 'base-type',
      elements: 1,
      bytes: 1,
      bitsPerWeight: 8,
      ...(from ? { fallback: { from, reason: 'rows do not fit' } } : {}),
    })
    const plan = (tensors: GgufTensorPlan[]): GgufExportPlan => ({
      type: 'Q4_K_M',
      tensors,
      skipped: [],
      bytes: tensors.length,
    })
    const some = fallbackSummary(plan([t('a', 'Q5_0', 'Q4_K'), t('b', 'Q4_K'), t('c', 'Q4_K'), t('n', 'F32')]))
    expect(some).toEqual({ count: 1, total: 3, most: false, pairs: ['Q4_K → Q5_0 ×1'] })
    const most = fallbackSummary(
      plan([t('a', 'Q5_0', 'Q4_K'), t('b', 'Q5_0', 'Q4_K'), t('c', 'Q8_0', 'Q6_K'), t('d', 'Q4_K')]),
    )
    expect(most).toEqual({ count: 3, total: 4, most: true, pairs: ['Q4_K → Q5_0 ×2', 'Q6_K → Q8_0 ×1'] })
  })
})
