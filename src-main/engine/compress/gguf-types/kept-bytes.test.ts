import { describe, expect, it } from 'vitest'
import { GGUF_KEPT_BUDGET, keepGgufBytes, type GgufKeptBytes } from './kept-bytes'

const kept = (bytes: number) => ({ type: 'Q4_0' as const, bytes: new Uint8Array(bytes), imatrix: false })

describe('kept GGUF bytes', () => {
  it('replaces or forgets a name, and keeps no more than the budget', () => {
    const map: GgufKeptBytes = new Map()
    keepGgufBytes(map, 'a', kept(GGUF_KEPT_BUDGET / 2))
    keepGgufBytes(map, 'b', kept(GGUF_KEPT_BUDGET / 2))
    expect([...map.keys()]).toEqual(['a', 'b'])
    // Over the budget: not kept (an export then quantizes that tensor again).
    keepGgufBytes(map, 'c', kept(1))
    expect(map.has('c')).toBe(false)
    // A name's new bytes replace its old ones within the same budget; a step without bytes forgets them.
    keepGgufBytes(map, 'b', kept(GGUF_KEPT_BUDGET / 4))
    expect(map.get('b')!.bytes.byteLength).toBe(GGUF_KEPT_BUDGET / 4)
    keepGgufBytes(map, 'c', kept(GGUF_KEPT_BUDGET / 4))
    expect(map.has('c')).toBe(true)
    keepGgufBytes(map, 'a', undefined)
    expect([...map.keys()]).toEqual(['b', 'c'])
  })
})
