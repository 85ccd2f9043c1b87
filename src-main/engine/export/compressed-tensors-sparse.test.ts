// compressed-tensors sparse exports of the real stories260K, pruned by Wanda (50% unstructured and 2:4):
// the file follows the documented layout (names, dtypes, shapes, bit order, sparsity_config), is smaller
// than the dense export, re-opens to the pruned weights bit for bit with the same perplexity, and a
// damaged file is refused with a typed error naming it.

import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compressModel, type CompressionOutput } from '../compress/compress-model'
import { validateRecipe } from '../compress/recipe/recipe'
import { isBlockLinear } from '../compress/recipe/targets'
import { WhittleError } from '../errors'
import { perplexity } from '../eval/perplexity'
import { openModelFiles } from '../formats/open'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import type { TensorEntry } from '../formats/types'
import { closeFile } from '../io/ranged-file'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { bf16ToF32, f32ToBf16Bits } from '../numerics/float-encodings'
import { WorkerPool } from '../pool/worker-pool'
import { hasShared, referenceIds, repoRoot, shared, SKIP_SHARED } from '../testing/shared-data'
import { exportModel } from './export-model'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-sparse-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** Few windows: equality, not a precise number, is what is checked. */
const WINDOWS = 8

/** Raw tensors of one safetensors file, by name (the file is closed after reading). */
async function rawTensors(file: string): Promise<Map<string, { entry: TensorEntry; bytes: Uint8Array }>> {
  const files = await openModelFiles(file)
  try {
    const out = new Map<string, { entry: TensorEntry; bytes: Uint8Array }>()
    for (const e of files.tensors)
      out.set(e.name, { entry: e, bytes: (await readTensorBytes(e, 0, e.byteLength)).slice() })
    return out
  } finally {
    closeFile(file)
  }
}

function bigInts(bytes: Uint8Array): number[] {
  return Array.from(new BigInt64Array(bytes.slice().buffer), Number)
}

describe.skipIf(!hasShared)(
  `compressed-tensors sparse exports on stories260K (${hasShared ? 'reference data present' : SKIP_SHARED})`,
  () => {
    let pool: WorkerPool
    let model: LoadedModel
    const pruned: Record<'unstructured' | 'twoFour', CompressionOutput | null> = { unstructured: null, twoFour: null }
    const ppl = async (m: LoadedModel): Promise<number> =>
      (await perplexity(pool, m, referenceIds('tinystories_eval'), { seqlen: 256, maxWindows: WINDOWS })).ppl
    const prune = (params: Record<string, unknown>): Promise<CompressionOutput> =>
      compressModel(
        pool,
        model,
        validateRecipe({
          calibration: { text: shared('text/tinystories_calib.txt'), samples: 16, seqlen: 128, seed: 0 },
          steps: [{ method: 'wanda', params }],
        }),
        { recipeDir: tmp, defaultCalibrationText: null },
      )

    beforeAll(async () => {
      pool = await WorkerPool.create({ threads: 2 })
      model = await loadModel(shared('models/stories260K'))
      pruned.unstructured = await prune({ sparsity: 0.5 })
      pruned.twoFour = await prune({ pattern: '2:4' })
    }, 300_000)
    afterAll(async () => {
      pruned.unstructured?.view.dispose()
      pruned.twoFour?.view.dispose()
      await pool?.close()
    })

    async function roundTrip(r: CompressionOutput, out: string): Promise<void> {
      const reopened = await loadModel(out)
      expect(reopened.tensors.map((t) => t.name).sort()).toEqual(r.view.tensors.map((t) => t.name).sort())
      for (const t of r.view.tensors) {
        const want = await readTensorF32(r.view.entry(t.name))
        const got = await readTensorF32(reopened.entry(t.name))
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), t.name).toBe(true)
      }
      expect(await ppl(reopened)).toBe(await ppl(r.view))
    }

    it('sparse-bitmask of Wanda 50%: documented layout and config, smaller than dense, bit-exact round trip', async () => {
      const r = pruned.unstructured!
      const out = path.join(tmp, 'bitmask')
      const result = await exportModel(pool, r.view, out, {
        format: 'sparse-bitmask',
        compression: { source: model, report: r.report, records: r.records },
      })
      expect(result.verified).toMatch(/^35 sparse Linears and \d+ other tensors re-read bit-exactly/)
      const q = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).quantization_config
      expect(Object.keys(q).sort()).toEqual(['quant_method', 'sparsity_config'])
      expect(q.quant_method).toBe('compressed-tensors')
      expect(Object.keys(q.sparsity_config).sort()).toEqual(
        ['format', 'global_sparsity', 'ignore', 'sparsity_structure', 'targets'].sort(),
      )
      expect(q.sparsity_config).toMatchObject({
        format: 'sparse-bitmask',
        sparsity_structure: 'unstructured',
        targets: ['Linear'],
        ignore: ['lm_head'],
      })
      expect(q.sparsity_config.global_sparsity).toBeCloseTo(0.5, 3)

      const raw = await rawTensors(path.join(out, 'model.safetensors'))
      const linears = r.view.tensors.filter(isBlockLinear)
      for (const t of linears) {
        const m = t.name.slice(0, -'.weight'.length)
        const [rows, cols] = t.shape
        expect(raw.has(t.name)).toBe(false)
        const shape = raw.get(`${m}.shape`)!,
          values = raw.get(`${m}.compressed`)!
        const bitmask = raw.get(`${m}.bitmask`)!,
          offsets = raw.get(`${m}.row_offsets`)!
        expect([shape.entry.dtype, shape.entry.shape, bigInts(shape.bytes)]).toEqual(['I64', [2], [rows, cols]])
        expect([bitmask.entry.dtype, bitmask.entry.shape]).toEqual(['U8', [rows, Math.ceil(cols / 8)]])
        expect([offsets.entry.dtype, offsets.entry.shape]).toEqual(['I64', [rows]])
        expect(values.entry.dtype).toBe(model.entry(t.name).dtype)
        // Independently of the decoder: bit c % 8 of byte c / 8 of row r is set exactly where W[r, c] ≠ 0,
        // the values are the nonzeros in row-major order and each row offset counts the nonzeros before it.
        const W = await readTensorF32(r.view.entry(t.name))
        const nonzeros: number[] = []
        const starts: number[] = []
        for (let row = 0; row < rows; row++) {
          starts.push(nonzeros.length)
          for (let c = 0; c < cols; c++) {
            const bit = (bitmask.bytes[row * Math.ceil(cols / 8) + (c >> 3)] >> (c & 7)) & 1
            expect(bit).toBe(W[row * cols + c] !== 0 ? 1 : 0)
            if (W[row * cols + c] !== 0) nonzeros.push(W[row * cols + c])
          }
        }
        expect(Array.from(new Float32Array(values.bytes.slice().buffer))).toEqual(nonzeros)
        expect(bigInts(offsets.bytes)).toEqual(starts)
      }

      const dense = await exportModel(pool, r.view, path.join(tmp, 'bitmask-dense'), { format: 'safetensors' })
      const denseBytes = dense.files.find((f) => f.name === 'model.safetensors')!.bytes
      expect(statSync(path.join(out, 'model.safetensors')).size).toBeLessThan(0.75 * denseBytes)
      await roundTrip(r, out)
    }, 300_000)

    it('sparse-24-bitmask of Wanda 2:4: [rows, cols/2] values, two bits in every four, bit-exact round trip', async () => {
      const r = pruned.twoFour!
      const out = path.join(tmp, 'two-four')
      await exportModel(pool, r.view, out, { format: 'sparse-24-bitmask' })
      const q = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).quantization_config
      expect(q.sparsity_config).toMatchObject({ format: 'sparse-24-bitmask', sparsity_structure: '2:4' })
      expect(q.sparsity_config.global_sparsity).toBeCloseTo(0.5, 3)
      const raw = await rawTensors(path.join(out, 'model.safetensors'))
      for (const t of r.view.tensors.filter(isBlockLinear)) {
        const m = t.name.slice(0, -'.weight'.length)
        const [rows, cols] = t.shape
        const shape = raw.get(`${m}.shape`)!,
          values = raw.get(`${m}.compressed`)!,
          bitmask = raw.get(`${m}.bitmask`)!
        expect(raw.has(`${m}.row_offsets`)).toBe(false)
        expect([shape.entry.dtype, shape.entry.shape, bigInts(shape.bytes)]).toEqual(['I64', [2, 1], [rows, cols]])
        expect(values.entry.shape).toEqual([rows, cols / 2])
        const rowBytes = Math.ceil(cols / 8)
        expect([bitmask.entry.dtype, bitmask.entry.shape]).toEqual(['U8', [rows, rowBytes]])
        // Each group of 4 is one nibble of its row's bytes (rows start on a byte): two bits set in each.
        for (let row = 0; row < rows; row++) {
          for (let g = 0; g < cols / 4; g++) {
            const nibble = (bitmask.bytes[row * rowBytes + (g >> 1)] >> (4 * (g & 1))) & 0xf
            expect([...nibble.toString(2)].filter((b) => b === '1').length).toBe(2)
          }
        }
      }
      const source = statSync(shared('models/stories260K/model.safetensors')).size
      expect(statSync(path.join(out, 'model.safetensors')).size).toBeLessThan(0.75 * source)
      await roundTrip(r, out)
    }, 300_000)

    it('refuses formats the weights do not fit, with typed errors', async () => {
      const refuses = async (p: Promise<unknown>, format: RegExp): Promise<void> => {
        const e = await p.catch((x: unknown) => x)
        expect(e).toBeInstanceOf(WhittleError)
        expect((e as WhittleError).code).toBe('unsupported')
        expect((e as Error).message).toMatch(format)
      }
      await refuses(
        exportModel(pool, pruned.unstructured!.view, path.join(tmp, 'not-24'), { format: 'sparse-24-bitmask' }),
        /no Linear is 2:4 sparse/,
      )
      await refuses(
        exportModel(pool, model, path.join(tmp, 'not-sparse'), { format: 'sparse-bitmask' }),
        /no Linear is sparse enough/,
      )
    }, 120_000)

    it('CLI: convert turns a pruned dense checkpoint into sparse-bitmask; usage errors exit 2', async () => {
      const dense = path.join(tmp, 'cli-dense')
      await exportModel(pool, pruned.unstructured!.view, dense, { format: 'safetensors' })
      const out = path.join(tmp, 'cli-sparse')
      const cli = (...args: string[]) =>
        spawnSync(process.execPath, [path.join(repoRoot, 'src-main/cli/bin.mjs'), 'convert', ...args], {
          encoding: 'utf8',
          timeout: 120_000,
        })
      const r = cli(dense, '--out', out, '--format', 'sparse-bitmask', '--json')
      expect(r.status, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ format: 'sparse-bitmask', out })
      const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
      expect(config.quantization_config.sparsity_config.format).toBe('sparse-bitmask')
      expect(statSync(path.join(out, 'model.safetensors')).size).toBeLessThan(
        statSync(path.join(dense, 'model.safetensors')).size,
      )
      const bad = cli(dense, '--out', path.join(tmp, 'cli-bad'), '--format', 'sparse-2:4')
      expect(bad.status).toBe(2)
      expect(bad.stderr).toMatch(/sparse-bitmask or sparse-24-bitmask/)
    }, 180_000)

    it('a bf16 model keeps its pruned values as BF16 where that is exact, F32 where it is not', async () => {
      const view = withReplacements(await loadModel(shared('models/stories260K')))
      const config = view.files.config!
      config.torch_dtype = 'bfloat16'
      const linears = view.tensors.filter(isBlockLinear)
      // Half of every Linear zeroed; all but the first rounded to bf16, as a pruned bf16 model holds them.
      for (const [i, t] of linears.entries()) {
        const w = await readTensorF32(view.entry(t.name))
        view.replace(
          t.name,
          w.map((x, j) => (j % 2 ? 0 : i === 0 ? x : bf16ToF32(f32ToBf16Bits(x)))),
        )
      }
      const out = path.join(tmp, 'bf16')
      await exportModel(pool, view, out, { format: 'sparse-bitmask' })
      const raw = await rawTensors(path.join(out, 'model.safetensors'))
      const dtypes = linears.map((t) => raw.get(`${t.name.slice(0, -'.weight'.length)}.compressed`)!.entry.dtype)
      expect(dtypes).toEqual(['F32', ...linears.slice(1).map(() => 'BF16')])
      const reopened = await loadModel(out)
      for (const t of linears) {
        const want = await readTensorF32(view.entry(t.name))
        const got = await readTensorF32(reopened.entry(t.name))
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), t.name).toBe(true)
      }
      view.dispose()
    }, 120_000)

    /** A copy of the sparse-bitmask export whose model.safetensors has one tensor changed. */
    async function damaged(
      name: string,
      edit: (e: { entry: TensorEntry; bytes: Uint8Array }) => SafetensorsTensorInput,
    ) {
      const from = path.join(tmp, 'bitmask')
      const dir = mkdtempSync(path.join(tmp, 'damaged-'))
      const raw = await rawTensors(path.join(from, 'model.safetensors'))
      const tensors = [...raw.values()].map((t) =>
        t.entry.name === name
          ? edit(t)
          : { name: t.entry.name, dtype: t.entry.dtype, shape: t.entry.shape, data: t.bytes },
      )
      await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' })
      copyFileSync(path.join(from, 'config.json'), path.join(dir, 'config.json'))
      return dir
    }

    it('a wrong bitmask length or row offsets out of range give format errors naming the file', async () => {
      const m = 'model.layers.0.mlp.down_proj'
      const shortMask = await damaged(`${m}.bitmask`, ({ entry, bytes }) => ({
        name: entry.name,
        dtype: 'U8',
        shape: [entry.shape[0], entry.shape[1] - 1],
        data: bytes.subarray(0, entry.shape[0] * (entry.shape[1] - 1)),
      }))
      const e1 = await openModelFiles(shortMask).catch((x: unknown) => x)
      expect(e1).toBeInstanceOf(WhittleError)
      expect((e1 as WhittleError).code).toBe('format')
      expect((e1 as WhittleError).file).toBe(path.join(shortMask, 'model.safetensors'))
      expect((e1 as Error).message).toMatch(new RegExp(`${m}.bitmask.*has shape`))

      const badOffsets = await damaged(`${m}.row_offsets`, ({ entry, bytes }) => {
        const o = new BigInt64Array(bytes.slice().buffer)
        o[1] = 1n << 40n
        return { name: entry.name, dtype: 'I64', shape: entry.shape, data: new Uint8Array(o.buffer) }
      })
      const files = await openModelFiles(badOffsets)
      try {
        const e2 = await readTensorF32(files.tensors.find((t) => t.name === `${m}.weight`)!).catch((x: unknown) => x)
        expect(e2).toBeInstanceOf(WhittleError)
        expect((e2 as WhittleError).code).toBe('format')
        expect((e2 as WhittleError).file).toBe(path.join(badOffsets, 'model.safetensors'))
        expect((e2 as Error).message).toMatch(/sparse module .*row_offsets\[1\] is 1099511627776/)
      } finally {
        for (const f of files.files) closeFile(f)
      }
    }, 60_000)
  },
)
