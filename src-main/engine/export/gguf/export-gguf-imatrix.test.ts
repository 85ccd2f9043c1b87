// GGUF export with an importance matrix against llama-quantize --imatrix imatrix.gguf --pure: every
// quantized tensor of ../shared/reference/gguf-golden/imatrix/small-llama-imatrix-<TYPE>.gguf byte for
// byte, the two mixes (llama.cpp's per-tensor policy with an imatrix), the quantize.imatrix.* keys
// llama-quantize records, and the same export from the legacy .dat.

import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGguf } from '../../formats/gguf'
import { readImatrixFile } from '../../formats/imatrix-file'
import { readTensorBytes } from '../../formats/read'
import { loadModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'
import { hasShared, shared, SKIP_SHARED } from '../../testing/shared-data'
import { exportGguf } from './export-gguf'

let pool: WorkerPool
let tmp: string
beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
  tmp = await mkdtemp(path.join(os.tmpdir(), 'whittle-gguf-imatrix-'))
})
afterAll(async () => {
  await pool?.close()
  await rm(tmp, { recursive: true, force: true })
})

const golden = (name: string): string => shared('reference', 'gguf-golden', 'imatrix', name)

/** Every tensor's type and bytes, by name. */
async function tensors(file: string): Promise<Map<string, { dtype: string; bytes: Uint8Array }>> {
  const g = await readGguf(file)
  const out = new Map<string, { dtype: string; bytes: Uint8Array }>()
  for (const t of g.tensors) out.set(t.name, { dtype: t.dtype, bytes: await readTensorBytes(t, 0, t.byteLength) })
  return out
}

if (!hasShared) console.log(`[export/gguf/export-gguf-imatrix.test] llama-quantize --imatrix goldens: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)('llama-quantize --imatrix imatrix.gguf --pure, reproduced by the GGUF export', () => {
  for (const type of ['Q4_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_XS'] as const) {
    it(`${type}: every tensor of small-llama-imatrix-${type}.gguf, byte for byte`, async () => {
      const file = golden('imatrix.gguf')
      const { imatrix } = await readImatrixFile(file)
      const model = await loadModel(golden('small-llama-tok-f32.gguf'))
      const out = path.join(tmp, `${type}.gguf`)
      const report = await exportGguf(pool, model, out, { type, imatrix: { imatrix, file: 'imatrix.gguf' } })
      const want = await tensors(golden(`small-llama-imatrix-${type}.gguf`))
      const got = await tensors(out)
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
      for (const [name, w] of want) {
        const g = got.get(name)!
        expect(g.dtype, name).toBe(w.dtype)
        expect(
          g.bytes.findIndex((b, i) => b !== w.bytes[i]),
          `${name}: first differing byte`,
        ).toBe(-1)
        expect(g.bytes.length, name).toBe(w.bytes.length)
      }
      // The importances reached every block weight and nothing else.
      expect(
        report.tensors
          .filter((t) => t.imatrix)
          .map((t) => t.name)
          .sort(),
      ).toEqual([...imatrix.entries.keys()].sort())
      // What llama-quantize records about the imatrix, as it writes it.
      const meta = (await readGguf(out)).metadata
      const wantMeta = (await readGguf(golden(`small-llama-imatrix-${type}.gguf`))).metadata
      for (const key of [
        'quantize.imatrix.file',
        'quantize.imatrix.dataset',
        'quantize.imatrix.entries_count',
        'quantize.imatrix.chunks_count',
      ]) {
        expect(meta[key], key).toEqual(wantMeta[key])
      }
    })
  }

  for (const mix of ['Q4_K_M', 'Q3_K_M'] as const) {
    it(`the ${mix} mix (no --pure): small-llama-imatrix-mix-${mix}.gguf, the same type and bytes for every tensor`, async () => {
      const { imatrix } = await readImatrixFile(golden('imatrix.gguf'))
      const model = await loadModel(golden('small-llama-tok-f32.gguf'))
      const out = path.join(tmp, `mix-${mix}.gguf`)
      await exportGguf(pool, model, out, { type: mix, imatrix: { imatrix, file: 'imatrix.gguf' } })
      const want = await tensors(golden(`small-llama-imatrix-mix-${mix}.gguf`))
      const got = await tensors(out)
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
      expect(new Set([...want.values()].map((t) => t.dtype)).size).toBeGreaterThan(2) // a real mix of types
      for (const [name, w] of want) {
        expect(got.get(name)!.dtype, name).toBe(w.dtype)
        expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(w.bytes)), name).toBe(0)
      }
    })
  }

  it('the legacy imatrix.dat gives the same Q4_K file, and without an imatrix the bytes differ', async () => {
    const model = await loadModel(golden('small-llama-tok-f32.gguf'))
    const { imatrix } = await readImatrixFile(golden('imatrix.dat'))
    const fromDat = path.join(tmp, 'dat-Q4_K.gguf')
    await exportGguf(pool, model, fromDat, { type: 'Q4_K', imatrix: { imatrix, file: 'imatrix.dat' } })
    const plain = path.join(tmp, 'plain-Q4_K.gguf')
    await exportGguf(pool, model, plain, { type: 'Q4_K' })
    const want = await tensors(golden('small-llama-imatrix-Q4_K.gguf'))
    const got = await tensors(fromDat)
    const without = await tensors(plain)
    let differing = 0
    for (const [name, w] of want) {
      expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(w.bytes)), name).toBe(0)
      if (Buffer.compare(Buffer.from(without.get(name)!.bytes), Buffer.from(w.bytes)) !== 0) differing++
    }
    expect(differing).toBe(14) // every tensor but token_embd and output, as the golden README says
  })
})
