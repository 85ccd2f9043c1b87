import { describe, expect, it } from 'vitest'
import { activationSpec, baseName, intInRange, numberOf, perplexitySpec, probeSpec } from './analysis-requests'

describe('analysis requests', () => {
  it('reads number fields: numbers, numeric strings, and nothing for empty or junk', () => {
    expect(numberOf(12)).toBe(12)
    expect(numberOf(' 7 ')).toBe(7)
    expect(numberOf('')).toBeNull()
    expect(numberOf(null)).toBeNull()
    expect(numberOf(undefined)).toBeNull()
    expect(numberOf('abc')).toBeNull()
    expect(numberOf(Number.POSITIVE_INFINITY)).toBeNull()
    expect(intInRange(3.6, [1, 10])).toBe(4)
    expect(intInRange(-5, [1, 10])).toBe(1)
    expect(intInRange(1e12, [1, 10])).toBe(10)
    expect(intInRange('', [1, 10])).toBeNull()
  })

  it('leaves out the text, max windows and the default protocol when empty, so the engine uses its defaults', () => {
    expect(perplexitySpec('m', { text: '  ', seqlen: 512, maxWindows: '', protocol: 'gptq' })).toEqual({
      kind: 'perplexity',
      modelId: 'm',
      seqlen: 512,
    })
    expect(
      perplexitySpec('m', { text: ' /data/wiki.txt ', seqlen: 128, maxWindows: 40, protocol: 'llama.cpp' }),
    ).toEqual({
      kind: 'perplexity',
      modelId: 'm',
      seqlen: 128,
      text: '/data/wiki.txt',
      maxWindows: 40,
      protocol: 'llama.cpp',
    })
  })

  it('keeps every number inside what the engine accepts', () => {
    expect(perplexitySpec('m', { text: '', seqlen: 1, maxWindows: 0, protocol: 'gptq' })).toMatchObject({
      seqlen: 2,
      maxWindows: 1,
    })
    expect(perplexitySpec('m', { text: '', seqlen: null, maxWindows: null, protocol: 'gptq' }).seqlen).toBe(256)
    expect(activationSpec('m', { threshold: -3, samples: 1e9, seqlen: 100000 })).toEqual({
      kind: 'activations',
      modelId: 'm',
      threshold: 0,
      calibration: { samples: 4096, seqlen: 8192 },
    })
  })

  it('falls back to the documented defaults: threshold 6, 128 windows for a capture, 16 for a probe, seqlen 256', () => {
    expect(activationSpec('m', { threshold: '', samples: '', seqlen: '' })).toEqual({
      kind: 'activations',
      modelId: 'm',
      threshold: 6,
      calibration: { samples: 128, seqlen: 256 },
    })
    expect(probeSpec('heads', 'm', { samples: null, seqlen: null })).toEqual({
      kind: 'heads',
      modelId: 'm',
      calibration: { samples: 16, seqlen: 256 },
    })
    expect(probeSpec('layers', 'm', { samples: 4, seqlen: 64 })).toEqual({
      kind: 'layers',
      modelId: 'm',
      calibration: { samples: 4, seqlen: 64 },
    })
  })

  it('names a file by the last part of its path on either platform', () => {
    expect(baseName('/a/b/tinystories_eval.txt')).toBe('tinystories_eval.txt')
    expect(baseName('C:\\texts\\wiki.txt')).toBe('wiki.txt')
  })
})
