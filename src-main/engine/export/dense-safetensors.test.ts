// Dense exports: sharding with an index, dtype conversion, the free-space check, and what a process
// killed mid-export leaves behind (nothing at the destination; a lock and a temporary folder that the
// next export removes).

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readTensorF32 } from '../formats/read'
import { loadModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { generateLlamaModel } from '../synthetic/generate'
import { writeFolderAtomically } from './atomic-folder'
import { assertDiskSpace, freeBytes } from './disk-space'
import { planShards, verifyDenseSafetensors, writeDenseSafetensors } from './dense-safetensors'
import { roundToF16 } from '../numerics/float-encodings'
import { WhittleError } from '../errors'
import { lockPathFor } from '../io/destination-lock'
import { scaled } from '../testing/time-factor'

const root = path.resolve(__dirname, '../../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-dense-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('dense safetensors export', () => {
  it('plans shards in order, never splitting a tensor', () => {
    expect(
      planShards(
        [
          { name: 'a', bytes: 4 },
          { name: 'b', bytes: 4 },
          { name: 'c', bytes: 9 },
          { name: 'd', bytes: 1 },
        ],
        8,
      ),
    ).toEqual([['a', 'b'], ['c'], ['d']])
  })

  it('shards with an index that re-opens as the same model, and converts to F16 exactly', async () => {
    const src = path.join(tmp, 'src')
    await generateLlamaModel(src, 'tiny-llama-test', { dtype: 'F32', seed: 3 })
    const model = await loadModel(src)
    const view = withReplacements(model)
    const out = path.join(tmp, 'sharded')
    await writeFolderAtomically(
      out,
      async (dir) => {
        await writeDenseSafetensors(view, dir, { shardBytes: 100_000 })
      },
      (dir) => verifyDenseSafetensors(view, dir, { shardBytes: 100_000 }),
    )
    const files = readdirSync(out)
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))
    expect(shards.length).toBeGreaterThan(2)
    const index = JSON.parse(readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'))
    expect(Object.keys(index.weight_map).sort()).toEqual(model.tensors.map((t) => t.name).sort())
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards))
    const reopened = await loadModel(out)
    for (const t of model.tensors)
      expect(Array.from(await readTensorF32(reopened.entry(t.name)))).toEqual(
        Array.from(await readTensorF32(model.entry(t.name))),
      )

    const half = path.join(tmp, 'f16')
    await writeFolderAtomically(
      half,
      (dir) => writeDenseSafetensors(view, dir, { dtype: 'F16' }).then(() => undefined),
      (dir) => verifyDenseSafetensors(view, dir, { dtype: 'F16' }),
    )
    const h = await loadModel(half)
    expect(JSON.parse(readFileSync(path.join(half, 'config.json'), 'utf8')).torch_dtype).toBe('float16')
    const name = model.tensors[3].name
    expect(h.entry(name).dtype).toBe('F16')
    expect(Array.from(await readTensorF32(h.entry(name)))).toEqual(
      Array.from(await readTensorF32(model.entry(name)), roundToF16),
    )
  })

  it('checks free space first, naming the folder and the sizes', async () => {
    expect(await freeBytes(path.join(tmp, 'not', 'yet'))).toBeGreaterThan(0)
    await expect(assertDiskSpace(tmp, 2 ** 60, 'a huge export')).rejects.toThrow(
      /not enough free disk space for a huge export: it needs about [\d.]+ [KMGTP]i?B, [\d.]+ [KMGTP]i?B are free/,
    )
    await expect(writeFolderAtomically(path.join(tmp, 'huge'), async () => {}, undefined, 2 ** 60)).rejects.toThrow(
      /not enough free disk space/,
    )
    expect(existsSync(path.join(tmp, 'huge'))).toBe(false)
  })

  it(
    'a process killed mid-export leaves no destination; the next export clears its leftovers',
    async () => {
      const dest = path.join(tmp, 'killed')
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(__dirname, 'testing/export-then-hang.ts'),
          path.join(root, 'resources/demo/stories260K'),
          dest,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      const tmpDir = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          const m = /^written (.+)$/m.exec(d.toString())
          if (m) resolve(m[1])
        })
        child.on('exit', (code) => reject(new Error(`the child exited (${code}) before writing: ${stderr}`)))
      })
      expect(readdirSync(tmpDir)).toContain('model.safetensors')
      // While it runs, the destination is its own: another export is refused and removes nothing.
      const busy = await writeFolderAtomically(dest, async () => {}).catch((e: unknown) => e)
      expect(busy).toBeInstanceOf(WhittleError)
      expect((busy as WhittleError).message).toContain(
        `${dest}: the destination is being written by another export (process ${child.pid};`,
      )
      expect(existsSync(tmpDir)).toBe(true)
      const exited = new Promise((r) => child.on('exit', r))
      child.kill('SIGKILL')
      await exited
      expect(existsSync(dest)).toBe(false)
      expect(existsSync(tmpDir)).toBe(true)
      expect(existsSync(lockPathFor(dest))).toBe(true)
      await writeFolderAtomically(dest, async () => {})
      expect(existsSync(tmpDir)).toBe(false)
      expect(existsSync(lockPathFor(dest))).toBe(false)
      expect(existsSync(dest)).toBe(true)
    },
    scaled(60_000),
  )
})
