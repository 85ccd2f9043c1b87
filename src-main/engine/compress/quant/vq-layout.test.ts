// GPTVQ's codebook geometry and bit count, by hand for stories260K's shapes and a Llama-7B Linear, and
// decode / gather as adjoint linear maps (what the codebook update relies on).

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../../errors'
import { lcg } from '../testing/synthetic-layer'
import { VqLayout, type VqShape } from './vq-layout'

const shape = (over: Partial<VqShape> = {}): VqShape => ({
  dim: 2,
  bits: 3,
  groupSize: 8192,
  columnsPerGroup: 256,
  codebookDtype: 'int8',
  ...over,
})

describe('VqLayout', () => {
  it('places codebooks as the paper groups them and counts their bits', () => {
    // One int8 codebook: 64 entries × 2 × 8 bits + a 16-bit scale = 1040 bits.
    const q = new VqLayout(64, 64, shape())
    expect([q.k, q.cpg, q.rpg, q.codebooks]).toEqual([64, 64, 64, 1])
    expect(q.bitsPerWeight()).toBeCloseTo(3 + 1040 / 4096, 12)
    // gate_proj 172 × 64: 8192 / 64 = 128 rows per codebook → 2 codebooks.
    const gate = new VqLayout(172, 64, shape())
    expect([gate.rpg, gate.rowGroups, gate.colGroups]).toEqual([128, 2, 1])
    expect(gate.bitsPerWeight()).toBeCloseTo(3 + 2080 / 11008, 12)
    // down_proj 64 × 172: all 172 columns, ⌊8192 / 172⌋ = 47 rows → 2 codebooks.
    const down = new VqLayout(64, 172, shape())
    expect([down.cpg, down.rpg, down.codebooks]).toEqual([172, 47, 2])
    // A Llama-7B Linear: 256 columns × 32 rows per codebook, 16 × 128 of them: 0.127 bits of codebook.
    const big = new VqLayout(4096, 4096, shape())
    expect([big.rpg, big.rowGroups, big.colGroups]).toEqual([32, 128, 16])
    expect(big.bitsPerWeight()).toBeCloseTo(3 + (2048 * 1040) / 4096 ** 2, 12)
    // f16 codebooks, 4-D at 2 bits: 256 entries × 4 × 16 bits.
    const f16 = new VqLayout(4096, 4096, shape({ dim: 4, bits: 2, groupSize: 65536, codebookDtype: 'f16' }))
    expect([f16.k, f16.codebooks]).toEqual([256, 16 * 16])
    expect(f16.bitsPerWeight()).toBeCloseTo(2 + (256 * 256 * 4 * 16) / 4096 ** 2, 12)
  })

  it('maps each vector to its column group and row block, the last ones shorter', () => {
    const l = new VqLayout(10, 12, shape({ groupSize: 20, columnsPerGroup: 8 }))
    // 8 columns × 2 rows per codebook: 5 row blocks, 2 column groups (8 + 4 columns).
    expect([l.rpg, l.rowGroups, l.colGroups]).toEqual([2, 5, 2])
    expect(l.codebookOf(0, 0)).toBe(0)
    expect(l.codebookOf(3, 6)).toBe(1)
    expect(l.codebookOf(9, 8)).toBe(5 + 4)
  })

  it('decode and gather are adjoint: ⟨decode(C), M⟩ = ⟨C, gather(M)⟩', () => {
    const l = new VqLayout(12, 16, shape({ bits: 1, groupSize: 32, columnsPerGroup: 8 }))
    const rnd = lcg(1)
    const C = Float32Array.from({ length: l.codebooks * l.k * l.d }, rnd)
    const M = Float32Array.from({ length: 12 * 16 }, rnd)
    const A = Int32Array.from({ length: 12 * l.vectorsPerRow }, () => Math.floor((rnd() + 0.5) * l.k))
    const decoded = l.decode(C, A, new Float32Array(12 * 16))
    const gathered = l.gather(M, A)
    const lhs = decoded.reduce((s, v, i) => s + v * M[i], 0)
    const rhs = gathered.reduce((s, v, i) => s + v * C[i], 0)
    expect(lhs).toBeCloseTo(rhs, 4)
    // Each decoded vector is its codebook's entry.
    expect([decoded[5 * 16 + 10], decoded[5 * 16 + 11]]).toEqual(
      Array.from(
        C.subarray((l.codebookOf(5, 10) * l.k + A[5 * 8 + 5]) * 2, (l.codebookOf(5, 10) * l.k + A[5 * 8 + 5]) * 2 + 2),
      ),
    )
  })

  it('refuses a weight whose columns are not whole vectors, naming it', () => {
    expect(() => new VqLayout(8, 63, shape(), 'layers.0.mlp.down_proj.weight')).toThrow(WhittleError)
    expect(() => new VqLayout(8, 63, shape(), 'layers.0.mlp.down_proj.weight')).toThrow(/down_proj.*63 columns/)
  })
})
