import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isBlockLinear } from '../compress/recipe/targets'
import { minmaxGrid, quantizeCode } from '../numerics/minmax-grid'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import type { TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import { loadModel } from '../model/loaded-model'
import { withReplacements, type ModelView } from '../model/model-view'
import { hasShared, shared, SKIP_SHARED } from '../testing/shared-data'
import { exportCompressedTensors } from './compressed-tensors-export'
import { exportGptq } from './gptq-export'
import { dequantizeRecord, sequentialGIdx, type UniformQuantRecord } from '../compress/quant/record'
import { unpackColsInt32, unpackRowsInt32 } from '../numerics/bit-fields'
import { roundToF16 } from '../numerics/float-encodings'
import { unpackGptqWeight, unpackGptqZeros } from '../numerics/gptq-pack'

/** Min-max quantization of W with fp16-rounded scales: what RTN will emit once it fills records. */
function buildRecord(
  W: Float32Array,
  rows: number,
  cols: number,
  bits: number,
  groupSize: number,
  sym: boolean,
  gIdx = sequentialGIdx(cols, groupSize),
): UniformQuantRecord {
  const groups = Math.max(...gIdx) + 1
  const scales = new Float32Array(groups * rows)
  const zeros = new Uint8Array(groups * rows)
  const codes = new Uint8Array(rows * cols)
  for (let g = 0; g < groups; g++) {
    const members = [...gIdx.keys()].filter((c) => gIdx[c] === g)
    for (let r = 0; r < rows; r++) {
      const values = members.map((c) => W[r * cols + c])
      const grid = minmaxGrid(values, 0, values.length, 1, bits, sym)
      const fp16Grid = { ...grid, scale: roundToF16(grid.scale) }
      scales[g * rows + r] = fp16Grid.scale
      zeros[g * rows + r] = grid.zero
      for (const c of members) codes[r * cols + c] = quantizeCode(W[r * cols + c], fp16Grid)
    }
  }
  return { bits, groupSize, sym, rows, cols, scales, zeros, gIdx, codes }
}

/** A deterministic shuffle of the sequential grouping (act-order's regrouping). */
function shuffledGIdx(cols: number, groupSize: number): Int32Array {
  const g = sequentialGIdx(cols, groupSize)
  const order = [...g.keys()].sort((a, b) => ((a * 37) % cols) - ((b * 37) % cols))
  return Int32Array.from(order, (i) => g[i])
}

async function quantizedView(
  bits: number,
  groupSize: number,
  sym: boolean,
  actOrder: boolean,
): Promise<{ view: ModelView; records: Map<string, UniformQuantRecord> }> {
  const view = withReplacements(await loadModel(shared('models/stories260K')))
  const records = new Map<string, UniformQuantRecord>()
  for (const t of view.tensors.filter(isBlockLinear)) {
    const [rows, cols] = t.shape
    const W = await readTensorF32(view.entry(t.name))
    const rec = buildRecord(W, rows, cols, bits, groupSize, sym, actOrder ? shuffledGIdx(cols, groupSize) : undefined)
    records.set(t.name, rec)
    view.replace(t.name, dequantizeRecord(rec))
  }
  return { view, records }
}

async function readI32(e: TensorEntry | undefined): Promise<Int32Array> {
  if (!e) throw new Error('tensor missing')
  return new Int32Array((await readTensorBytes(e, 0, e.byteLength)).slice().buffer)
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-packed-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe.skipIf(!hasShared)(
  `packed exports of stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    for (const [bits, format, sym] of [
      [4, 'gptq', false],
      [3, 'gptq', true],
      [2, 'gptq_v2', false],
      [8, 'gptq_v2', true],
    ] as const) {
      it(`GPTQ ${bits}-bit ${format} ${sym ? 'sym' : 'asym'}: re-read codes, zeros, scales and weights match the records`, async () => {
        const { view, records } = await quantizedView(bits, 32, sym, false)
        const dest = path.join(tmp, `gptq-${bits}-${format}`)
        await exportGptq(view, records, dest, { format })
        const config = JSON.parse(readFileSync(path.join(dest, 'config.json'), 'utf8'))
        expect(config.quantization_config).toEqual({
          quant_method: 'gptq',
          bits,
          group_size: 32,
          desc_act: false,
          sym,
          checkpoint_format: format,
          pack_dtype: 'int32',
        })
        expect(config.hidden_size).toBe(64) // the source config is kept
        expect(JSON.parse(readFileSync(path.join(dest, 'quantize_config.json'), 'utf8')).bits).toBe(bits)
        expect(existsSync(path.join(dest, 'tokenizer.json'))).toBe(true)
        const file = path.join(dest, 'model.safetensors')
        const written = await openModelFiles(file)
        const byName = new Map(written.tensors.map((t) => [t.name, t]))
        try {
          for (const [name, rec] of records) {
            const m = name.slice(0, -'.weight'.length)
            expect(byName.has(name)).toBe(false)
            const qweight = byName.get(`${m}.qweight`)
            expect(qweight?.shape).toEqual([Math.ceil((rec.cols * bits) / 32), rec.rows])
            expect(Array.from(unpackGptqWeight(await readI32(qweight), rec.rows, rec.cols, bits))).toEqual(
              Array.from(rec.codes),
            )
            const groups = rec.scales.length / rec.rows
            expect(
              Array.from(unpackGptqZeros(await readI32(byName.get(`${m}.qzeros`)), groups, rec.rows, bits, format)),
            ).toEqual(Array.from(rec.zeros))
            const scales = byName.get(`${m}.scales`) as TensorEntry
            expect(scales.dtype).toBe('F16')
            expect(Array.from(await readTensorF32(scales))).toEqual(Array.from(rec.scales))
            expect(Array.from(await readI32(byName.get(`${m}.g_idx`)))).toEqual(Array.from(rec.gIdx))
          }
          const norm = byName.get('model.norm.weight') as TensorEntry
          expect(norm.dtype).toBe('F16')
          const want = await readTensorF32(view.entry('model.norm.weight'))
          expect(Array.from(await readTensorF32(norm))).toEqual(Array.from(want, roundToF16))
        } finally {
          closeFile(file)
        }
        view.dispose()
      })
    }

    it('GPTQ v1 asymmetric 4-bit: every zero nibble is the zero minus one when no zero is 0', async () => {
      const { view, records } = await quantizedView(4, 32, false, false)
      const name = 'model.layers.0.self_attn.q_proj.weight'
      const rec = records.get(name) as UniformQuantRecord
      const dest = path.join(tmp, 'gptq-v1-nibbles')
      await exportGptq(view, records, dest, { format: 'gptq' })
      const file = path.join(dest, 'model.safetensors')
      const written = await openModelFiles(file)
      const qz = await readI32(written.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.qzeros'))
      closeFile(file)
      // word w of group g holds outputs 8w..8w+7; if none of those zeros is 0 no borrow happens.
      for (let g = 0; g < 2; g++) {
        for (let w = 0; w < 8; w++) {
          const z = Array.from({ length: 8 }, (_, j) => rec.zeros[g * 64 + w * 8 + j])
          if (z.includes(0)) continue
          const nibbles = Array.from({ length: 8 }, (_, j) => (qz[g * 8 + w] >>> (4 * j)) & 15)
          expect(nibbles).toEqual(z.map((v) => v - 1))
        }
      }
      view.dispose()
    })

    it('act-order records: desc_act is true and g_idx is written as regrouped', async () => {
      const { view, records } = await quantizedView(4, 16, true, true)
      const dest = path.join(tmp, 'gptq-act-order')
      await exportGptq(view, records, dest, { format: 'gptq' })
      expect(JSON.parse(readFileSync(path.join(dest, 'config.json'), 'utf8')).quantization_config.desc_act).toBe(true)
      view.dispose()
    })

    it('refuses to publish an export whose decode differs from the compressed model, leaving nothing behind', async () => {
      const { view, records } = await quantizedView(4, 32, false, false)
      const name = 'model.layers.1.mlp.up_proj.weight'
      const w = await readTensorF32(view.entry(name))
      w[5] += 1e-3
      view.replace(name, w)
      const dest = path.join(tmp, 'gptq-mismatch')
      await expect(exportGptq(view, records, dest, { format: 'gptq_v2' })).rejects.toThrow(
        /model\.layers\.1\.mlp\.up_proj\.weight: weight \[0, 5\] = .* is not on its quantization grid/,
      )
      expect(existsSync(dest)).toBe(false)
      view.dispose()
    })

    it('refuses records that disagree with the model or with each other', async () => {
      const { view, records } = await quantizedView(4, 32, false, false)
      const first = records.keys().next().value as string
      const wrongShape = new Map(records)
      wrongShape.set(first, { ...(records.get(first) as UniformQuantRecord), rows: 3 })
      await expect(exportGptq(view, wrongShape, path.join(tmp, 'bad-shape'), { format: 'gptq' })).rejects.toThrow(
        /the record is 3×64/,
      )
      const mixed = new Map(records)
      mixed.set(first, { ...(records.get(first) as UniformQuantRecord), bits: 8 })
      await expect(exportGptq(view, mixed, path.join(tmp, 'mixed'), { format: 'gptq' })).rejects.toThrow(
        /one checkpoint holds one setting/,
      )
      view.dispose()
    })

    for (const [bits, sym, actOrder] of [
      [4, false, false],
      [3, true, true],
      [8, false, true],
    ] as const) {
      it(`compressed-tensors ${bits}-bit ${sym ? 'sym' : 'asym'}${actOrder ? ' act-order' : ''}: packed tensors decode to the records`, async () => {
        const { view, records } = await quantizedView(bits, 32, sym, actOrder)
        const dest = path.join(tmp, `ct-${bits}-${sym}-${actOrder}`)
        await exportCompressedTensors(view, records, dest)
        const q = JSON.parse(readFileSync(path.join(dest, 'config.json'), 'utf8')).quantization_config
        expect(q.quant_method).toBe('compressed-tensors')
        expect(q.format).toBe('pack-quantized')
        expect(q.quantization_status).toBe('compressed')
        expect(q.ignore).toEqual(['lm_head'])
        expect(q.config_groups.group_0.targets).toEqual(['Linear'])
        expect(q.config_groups.group_0.weights).toMatchObject({
          num_bits: bits,
          type: 'int',
          symmetric: sym,
          strategy: 'group',
          group_size: 32,
          actorder: actOrder ? 'group' : null,
          dynamic: false,
        })
        const file = path.join(dest, 'model.safetensors')
        const written = await openModelFiles(file)
        const byName = new Map(written.tensors.map((t) => [t.name, t]))
        try {
          for (const [name, rec] of records) {
            const m = name.slice(0, -'.weight'.length)
            const groups = rec.scales.length / rec.rows
            const packed = byName.get(`${m}.weight_packed`)
            expect(packed?.shape).toEqual([rec.rows, Math.ceil((rec.cols * bits) / 32)])
            expect(Array.from(unpackRowsInt32(await readI32(packed), rec.rows, rec.cols, bits))).toEqual(
              Array.from(rec.codes),
            )
            expect(Array.from(await readI32(byName.get(`${m}.weight_shape`)))).toEqual([rec.rows, rec.cols])
            const scale = byName.get(`${m}.weight_scale`) as TensorEntry
            expect(scale.shape).toEqual([rec.rows, groups])
            expect(scale.dtype).toBe('F32') // the model is F32
            const s = await readTensorF32(scale)
            for (let r = 0; r < rec.rows; r++)
              for (let g = 0; g < groups; g++) expect(s[r * groups + g]).toBe(rec.scales[g * rec.rows + r])
            const zp = byName.get(`${m}.weight_zero_point`)
            if (sym) expect(zp).toBeUndefined()
            else {
              const z = unpackColsInt32(await readI32(zp), rec.rows, groups, bits)
              for (let r = 0; r < rec.rows; r++)
                for (let g = 0; g < groups; g++) expect(z[r * groups + g]).toBe(rec.zeros[g * rec.rows + r])
            }
            const gi = byName.get(`${m}.weight_g_idx`)
            if (actOrder) expect(Array.from(await readI32(gi))).toEqual(Array.from(rec.gIdx))
            else expect(gi).toBeUndefined()
          }
          expect(byName.get('model.norm.weight')?.dtype).toBe('F32')
        } finally {
          closeFile(file)
        }
        view.dispose()
      })
    }
  },
)
