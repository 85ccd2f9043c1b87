import { describe, expect, it } from 'vitest'
import { ternaryFormat } from '../compress/methods/bitnet'
import { defaultGgufType } from './export-model'

describe('the GGUF type an export picks when none is asked for', () => {
  it('is the recipe’s own GGUF type when every gguf tensor has it', () => {
    expect(
      defaultGgufType([
        { method: 'gguf', format: 'Q4_K' },
        { method: 'gguf', format: 'Q4_K' },
      ]),
    ).toBe('Q4_K')
    expect(
      defaultGgufType([
        { method: 'gguf', format: 'Q4_K' },
        { method: 'gguf', format: 'Q6_K' },
      ]),
    ).toBe('Q8_0')
  })

  it('is TQ2_0 for a ternary model (BitNet PTQ or ternary QAT), Q8_0 when anything else is in it', () => {
    const ptq = { method: 'bitnet', format: ternaryFormat('f16') }
    const qat = { method: 'distill', format: `${ternaryFormat('f16')}, QAT` }
    expect(defaultGgufType([ptq, ptq])).toBe('TQ2_0')
    expect(defaultGgufType([qat])).toBe('TQ2_0')
    expect(defaultGgufType([ptq, { method: 'rtn', format: 'w4 g128 asym' }])).toBe('Q8_0')
    expect(defaultGgufType([])).toBe('Q8_0')
  })
})
