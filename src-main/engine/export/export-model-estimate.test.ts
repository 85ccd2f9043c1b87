// The free-space estimate of a GGUF export (estimateExportBytes) takes each type's bits per weight from the
// ggml block table: Q5_K is estimated at 5.5 bits, not the 32 an F32 fallback would give.

import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeFile } from '../io/ranged-file'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { estimateExportBytes, ggufExportBitsPerWeight } from './export-model'

const demo = path.resolve(__dirname, '../../../resources/demo/stories260K')

describe('GGUF bits per weight for the free-space estimate', () => {
  it('plain types from their blocks (Q5_K 5.5), mixes from their main type, unknown names as F32', () => {
    expect(ggufExportBitsPerWeight('Q5_K')).toBeCloseTo(5.5, 12)
    // Hand-worked from ggml-common.h: Q5_K = (2 + 2 + 12 + 32 + 128) bytes per 256 weights = 176 · 8 / 256.
    expect(ggufExportBitsPerWeight('Q5_K')).toBe((176 * 8) / 256)
    expect(ggufExportBitsPerWeight('Q8_0')).toBe(8.5)
    expect(ggufExportBitsPerWeight('Q6_K')).toBe(6.5625)
    expect(ggufExportBitsPerWeight('BF16')).toBe(16)
    expect(ggufExportBitsPerWeight('Q4_K_M')).toBe(4.5)
    expect(ggufExportBitsPerWeight('Q4_K_S')).toBe(4.5)
    expect(ggufExportBitsPerWeight('constructor')).toBe(32)
  })
})

describe('estimateExportBytes for gguf', () => {
  let model: LoadedModel
  beforeAll(async () => {
    model = await loadModel(demo)
  })
  afterAll(() => {
    for (const f of model?.files.files ?? []) closeFile(f)
  })

  it("is the weight count times the type's bits over 8: Q5_K about 5.5/8 bytes a weight", () => {
    const view = withReplacements(model)
    const weights = view.files.tensors.reduce((n, t) => n + view.entry(t.name).shape.reduce((a, b) => a * b, 1), 0)
    expect(weights).toBeGreaterThan(200_000) // stories260K
    const q5k = estimateExportBytes(view, { format: 'gguf', ggufType: 'Q5_K' }, new Map())
    expect(q5k).toBe(Math.ceil((weights * 5.5) / 8))
    const f32 = estimateExportBytes(view, { format: 'gguf', ggufType: 'F32' }, new Map())
    expect(f32).toBe(weights * 4)
    expect(q5k / f32).toBeCloseTo(5.5 / 32, 6)
  })
})
