// The storage a GPTQ or compressed-tensors export shows when re-opened: the declared quantization, its
// parts, and code / zero / scale counts, checked against the records the export was written from and
// against the raw packed words unpacked here.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { PackedLinearStorage } from '../../contract/api'
import { isBlockLinear } from '../compress/recipe/targets'
import { minmaxGrid, quantizeCode } from '../numerics/minmax-grid'
import { dequantizeRecord, sequentialGIdx, type UniformQuantRecord } from '../compress/quant/record'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import type { TensorEntry } from '../formats/types'
import { tensorStorage } from '../inspect/tensor-storage'
import { closeFile } from '../io/ranged-file'
import { loadModel } from '../model/loaded-model'
import { withReplacements, type ModelView } from '../model/model-view'
import { roundToF16 } from '../numerics/float-encodings'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { exportCompressedTensors } from './compressed-tensors-export'
import { exportGptq } from './gptq-export'

/** Min-max quantization of W (fp16 scales) under a given grouping. */
function minmaxRecord(
  W: Float32Array,
  rows: number,
  cols: number,
  p: { bits: number; groupSize: number; sym: boolean },
  gIdx: Int32Array,
): UniformQuantRecord {
  const { bits, sym } = p
  const groups = Math.max(...gIdx) + 1
  const rec: UniformQuantRecord = {
    bits,
    groupSize: p.groupSize,
    sym,
    rows,
    cols,
    scales: new Float32Array(groups * rows),
    zeros: new Uint8Array(groups * rows),
    gIdx,
    codes: new Uint8Array(rows * cols),
  }
  for (let g = 0; g < groups; g++) {
    const members = [...gIdx.keys()].filter((c) => gIdx[c] === g)
    for (let r = 0; r < rows; r++) {
      const grid = minmaxGrid(
        members.map((c) => W[r * cols + c]),
        0,
        members.length,
        1,
        bits,
        sym,
        'f16',
      )
      rec.scales[g * rows + r] = grid.scale
      rec.zeros[g * rows + r] = grid.zero
      for (const c of members) rec.codes[r * cols + c] = quantizeCode(W[r * cols + c], grid)
    }
  }
  return rec
}

/** A deterministic regrouping of the inputs (what act-order produces). */
function shuffledGIdx(cols: number, groupSize: number): Int32Array {
  const g = sequentialGIdx(cols, groupSize)
  const order = [...g.keys()].sort((a, b) => ((a * 37) % cols) - ((b * 37) % cols))
  return Int32Array.from(order, (i) => g[i])
}

async function quantizedDemo(bits: number, groupSize: number, sym: boolean, actOrder: boolean) {
  const view: ModelView = withReplacements(await loadModel(shared('models/stories260K')))
  const records = new Map<string, UniformQuantRecord>()
  for (const t of view.tensors.filter(isBlockLinear)) {
    const [rows, cols] = t.shape
    const gIdx = actOrder ? shuffledGIdx(cols, groupSize) : sequentialGIdx(cols, groupSize)
    const rec = minmaxRecord(await readTensorF32(view.entry(t.name)), rows, cols, { bits, groupSize, sym }, gIdx)
    records.set(t.name, rec)
    view.replace(t.name, dequantizeRecord(rec))
  }
  return { view, records }
}

function counts(values: ArrayLike<number>, bits: number): number[] {
  const out = new Array<number>(2 ** bits).fill(0)
  for (let i = 0; i < values.length; i++) out[values[i]]++
  return out
}

async function words(e: TensorEntry): Promise<Uint32Array> {
  return new Uint32Array((await readTensorBytes(e, 0, e.byteLength)).slice().buffer)
}

/**
 * 4-bit codes straight from packed words: field j of a word is bits 4j..4j+3. Each of `rows` code runs of
 * `cols` is packed on its own, so the fields padding its last word (code 0) are taken out.
 */
function nibbleCounts(w: Uint32Array, rows: number, cols: number): number[] {
  const out = new Array<number>(16).fill(0)
  for (const word of w) for (let j = 0; j < 8; j++) out[(word >>> (4 * j)) & 15]++
  out[0] -= (Math.ceil(cols / 8) * 8 - cols) * rows
  return out
}

function expectScaleHistogram(s: PackedLinearStorage, scales: Float32Array): void {
  const h = s.scales
  expect(h.lo).toBe(Math.min(...scales))
  expect(h.hi).toBe(Math.max(...scales))
  const want = new Array(h.counts.length).fill(0)
  for (const v of scales)
    want[Math.min(h.counts.length - 1, Math.floor(((v - h.lo) / (h.hi - h.lo)) * h.counts.length))]++
  expect(h.counts).toEqual(want)
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-packed-storage-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe.skipIf(!hasShared)(
  `packed storage of stories260K exports (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    for (const [bits, groupSize, sym, actOrder, format] of [
      [4, 32, false, false, 'gptq'],
      [4, 16, true, true, 'gptq_v2'],
      [3, 32, false, false, 'gptq'],
    ] as const) {
      const label = `GPTQ ${bits}-bit g${groupSize}${actOrder ? ' act-order' : ''}, ${sym ? 'sym' : 'asym'}`
      it(`${label} (${format}): parts, code, zero and scale counts match the records`, async () => {
        const { view, records } = await quantizedDemo(bits, groupSize, sym, actOrder)
        const dest = path.join(tmp, `gptq-${bits}-${groupSize}-${format}`)
        await exportGptq(view, records, dest, { format })
        view.dispose()
        const model = await loadModel(dest)
        expect(model.summary.format).toBe('safetensors')
        expect(model.summary.quantization).toBe(label)
        const raw = new Map(
          (await openModelFiles(path.join(dest, 'model.safetensors'))).tensors.map((t) => [t.name, t]),
        )
        for (const [name, rec] of records) {
          const m = name.slice(0, -'.weight'.length)
          const s = (await tensorStorage(model.entry(name))) as PackedLinearStorage
          expect(s.kind).toBe('packed-linear')
          expect(s.label).toBe(label)
          expect([s.scheme, s.bits, s.groupSize, s.actOrder, s.symmetric]).toEqual([
            'gptq',
            bits,
            groupSize,
            actOrder,
            sym,
          ])
          expect(s.groups).toBe(rec.scales.length / rec.rows)
          expect(s.parts.map((p) => [p.name, p.role, p.dtype, p.shape])).toEqual([
            [`${m}.qweight`, 'codes', 'I32', [Math.ceil((rec.cols * bits) / 32), rec.rows]],
            [`${m}.scales`, 'scales', 'F16', [s.groups, rec.rows]],
            [`${m}.qzeros`, 'zeros', 'I32', [s.groups, Math.ceil((rec.rows * bits) / 32)]],
            [`${m}.g_idx`, 'g_idx', 'I32', [rec.cols]],
          ])
          const bytes = s.parts.map((p) => raw.get(p.name)!.byteLength).reduce((a, b) => a + b)
          expect(s.bitsPerWeight).toBeCloseTo((8 * bytes) / (rec.rows * rec.cols), 12)
          expect(s.codes).toEqual(counts(rec.codes, bits))
          if (bits === 4)
            expect(s.codes).toEqual(nibbleCounts(await words(raw.get(`${m}.qweight`)!), rec.rows, rec.cols))
          expect(s.zeros).toEqual(counts(rec.zeros, bits))
          expectScaleHistogram(s, Float32Array.from(rec.scales, roundToF16))
        }
        closeFile(path.join(dest, 'model.safetensors'))
      })
    }

    for (const [bits, sym, actOrder] of [
      [4, false, false],
      [3, true, true],
    ] as const) {
      const label = `compressed-tensors ${bits}-bit g32${actOrder ? ' act-order' : ''}, ${sym ? 'sym' : 'asym'}`
      it(`${label}: parts, code, zero and scale counts match the records`, async () => {
        const { view, records } = await quantizedDemo(bits, 32, sym, actOrder)
        const dest = path.join(tmp, `ct-${bits}-${sym}`)
        await exportCompressedTensors(view, records, dest)
        view.dispose()
        const model = await loadModel(dest)
        expect(model.summary.quantization).toBe(label)
        const raw = new Map(
          (await openModelFiles(path.join(dest, 'model.safetensors'))).tensors.map((t) => [t.name, t]),
        )
        for (const [name, rec] of records) {
          const m = name.slice(0, -'.weight'.length)
          const s = (await tensorStorage(model.entry(name))) as PackedLinearStorage
          expect(s.label).toBe(label)
          expect([s.scheme, s.bits, s.groupSize, s.actOrder, s.symmetric]).toEqual([
            'compressed-tensors',
            bits,
            32,
            actOrder,
            sym,
          ])
          const roles = s.parts.map((p) => [p.name, p.role])
          expect(roles[0]).toEqual([`${m}.weight_packed`, 'codes'])
          expect(roles[1]).toEqual([`${m}.weight_scale`, 'scales'])
          expect(roles.some(([, r]) => r === 'zeros')).toBe(!sym)
          expect(roles.some(([, r]) => r === 'g_idx')).toBe(actOrder)
          expect(roles.at(-1)).toEqual([`${m}.weight_shape`, 'shape'])
          expect(s.codes).toEqual(counts(rec.codes, bits))
          if (bits === 4)
            expect(s.codes).toEqual(nibbleCounts(await words(raw.get(`${m}.weight_packed`)!), rec.rows, rec.cols))
          expect(s.zeros).toEqual(sym ? null : counts(rec.zeros, bits))
          expectScaleHistogram(s, rec.scales)
        }
        closeFile(path.join(dest, 'model.safetensors'))
      })
    }

    it('a compressed replacement of a packed Linear no longer claims its packed storage', async () => {
      const demo = await quantizedDemo(4, 32, false, false)
      const dest = path.join(tmp, 'gptq-replaced')
      await exportGptq(demo.view, demo.records, dest, { format: 'gptq' })
      demo.view.dispose()
      const model = await loadModel(dest)
      const name = 'model.layers.0.self_attn.q_proj.weight'
      expect(model.entry(name).packed?.bits).toBe(4)
      const view = withReplacements(model)
      view.replace(name, await readTensorF32(model.entry(name)))
      expect(view.entry(name).packed).toBeUndefined()
      expect(await tensorStorage(view.entry(name))).toBeUndefined()
      view.dispose()
    })
  },
)
