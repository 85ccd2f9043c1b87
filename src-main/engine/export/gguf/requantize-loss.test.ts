// Re-quantizing an already quantized GGUF (--allow-requantize): each re-quantized tensor's report gives
// the second rounding's relative error, checked against the two files' tensors decoded independently by
// the TypeScript reader; a coarser target loses more, and the warning carries the summary.

import { mkdtemp, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGguf } from '../../formats/gguf'
import { readTensorF32 } from '../../formats/read'
import { closeFile } from '../../io/ranged-file'
import { loadModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportGguf, type GgufExportReport } from './export-gguf'

const q4 = shared('reference/gguf-golden/small-llama-Q4_K.gguf')
const hasGolden = existsSync(q4)

/** ‖a − b‖ / ‖a‖ in float64, written out here rather than shared with the code under test. */
function relError(a: Float32Array, b: Float32Array): number {
  let d = 0
  let n = 0
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) * (a[i] - b[i])
    n += a[i] * a[i]
  }
  return Math.sqrt(d / n)
}

let pool: WorkerPool
let tmp: string
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-requantize-'))
})
afterAll(async () => {
  pool?.close()
  await rm(tmp, { recursive: true, force: true })
})

describe.skipIf(!hasGolden)(
  `re-quantizing a quantized GGUF shows the double loss (${hasGolden ? 'golden files present' : SKIP_SHARED})`,
  () => {
    let runs = 0
    async function requantize(type: 'Q8_0' | 'Q2_K'): Promise<GgufExportReport> {
      const model = await loadModel(q4)
      const out = path.join(tmp, `rq-${type}-${runs++}.gguf`)
      return exportGguf(pool, model, out, { type, allowRequantize: true })
    }

    it('per tensor: the relative error between the source blocks and the new ones, as decoded by the reader', async () => {
      const report = await requantize('Q8_0')
      const source = await readGguf(q4)
      const written = await readGguf(report.file)
      const requantized = report.tensors.filter((t) => t.requantizedFrom !== undefined)
      expect(requantized.length).toBeGreaterThan(0)
      for (const t of requantized) {
        expect(t.requantizedFrom).toBe('Q4_K')
        const before = await readTensorF32(source.tensors.find((e) => e.name === t.name)!)
        const after = await readTensorF32(written.tensors.find((e) => e.name === t.name)!)
        expect(t.requantizeError, t.name).toBeCloseTo(relError(before, after), 6)
        expect(t.requantizeError!).toBeGreaterThan(0) // Q8_0 cannot hold every Q4_K value exactly
        expect(t.requantizeError!).toBeLessThan(0.02)
      }
      // Tensors that were not re-quantized (F32 norms) carry no such measure.
      expect(
        report.tensors.filter((t) => t.requantizedFrom === undefined).every((t) => t.requantizeError === undefined),
      ).toBe(true)
      closeFile(q4)
      closeFile(report.file)
      expect(report.warnings).toHaveLength(1)
      const mean = requantized.reduce((a, t) => a + t.requantizeError!, 0) / requantized.length
      expect(report.warnings[0]).toContain(`${(mean * 100).toPrecision(3)}%`)
    })

    it('a coarser target adds more loss than a finer one', async () => {
      const fine = await requantize('Q8_0')
      const coarse = await requantize('Q2_K')
      const byName = new Map(fine.tensors.map((t) => [t.name, t.requantizeError]))
      for (const t of coarse.tensors.filter((x) => x.requantizeError !== undefined))
        expect(t.requantizeError!, t.name).toBeGreaterThan(byName.get(t.name)!)
    })
  },
)
