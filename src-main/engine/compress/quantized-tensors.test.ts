// The marks of quantized tensors across steps (the recipe-level behaviour is in methods/distill.test.ts).

import { describe, expect, it } from 'vitest'
import { nextQuantized } from './quantized-tensors'

const t = (name: string, bitsPerWeight = 4) => ({ name, bitsPerWeight })

describe('nextQuantized', () => {
  it('marks what a quantize step changed below 16 bits, and keeps the marks through a prune', () => {
    const afterQuant = nextQuantized(new Map(), { name: 'nf4', kind: 'quantize' }, [t('a'), t('b', 16)], undefined)
    expect([...afterQuant]).toEqual([['a', 'nf4']])
    const afterPrune = nextQuantized(afterQuant, { name: 'wanda', kind: 'prune' }, [t('a', 32)], undefined)
    expect([...afterPrune]).toEqual([['a', 'nf4']])
  })

  it('follows renamed layers and forgets removed ones', () => {
    const before = new Map([
      ['layers.0.q', 'rtn'],
      ['layers.1.q', 'rtn'],
    ])
    const renames = new Map([['layers.1.q', 'layers.0.q']]) // layer 0 dropped, layer 1 renumbered
    expect([...nextQuantized(before, { name: 'drop_layers', kind: 'structure' }, [], renames)]).toEqual([
      ['layers.0.q', 'rtn'],
    ])
  })

  it('a recovery step that rewrote a tensor clears its mark (merged or trained weights are dense)', () => {
    const before = new Map([
      ['a', 'nf4'],
      ['b', 'nf4'],
    ])
    expect([...nextQuantized(before, { name: 'lora', kind: 'recover' }, [t('a', 32)], undefined)]).toEqual([
      ['b', 'nf4'],
    ])
  })
})
