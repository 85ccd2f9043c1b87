// Exports are exclusive, verified before they appear, and durable: two exports to one destination (in
// one process or two), a process killed while writing or while verifying a GGUF, a folder that appears
// mid-export, and the fsyncs of a folder export. The model is the demo stories260K shipped in the repo.

import { spawn, type ChildProcess } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { readGguf } from '../formats/gguf'
import { readTensorF32 } from '../formats/read'
import { lockPathFor } from '../io/destination-lock'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { scaled } from '../testing/time-factor'
import { writeFolderAtomically } from './atomic-folder'
import { exportModel } from './export-model'
import { exportGguf } from './gguf/export-gguf'

const root = path.resolve(__dirname, '../../..')
const demo = path.join(root, 'resources/demo/stories260K')
const tmp = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'whittle-exclusive-')))
let pool: WorkerPool
let model: LoadedModel
/** A GGUF F32 export of the demo model made alone: what every export of it must equal byte for byte. */
let solo: Buffer

beforeAll(async () => {
  pool = await WorkerPool.create({ threads: 0 })
  model = await loadModel(demo)
  const file = path.join(tmp, 'solo', 'stories.gguf')
  mkdirSync(path.dirname(file))
  await exportGguf(pool, model, file, { type: 'F32' })
  solo = readFileSync(file)
}, scaled(120_000))
afterAll(async () => {
  await pool?.close()
  rmSync(tmp, { recursive: true, force: true })
})

function fresh(name: string): string {
  const dir = path.join(tmp, name)
  mkdirSync(dir)
  return dir
}

/** The one typed rejection among two settled exports; the other must have succeeded. */
function oneWinner<T>(results: PromiseSettledResult<T>[]): { value: T; loser: WhittleError } {
  expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected'])
  const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
  expect(lost.reason).toBeInstanceOf(WhittleError)
  return {
    value: (results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<T>).value,
    loser: lost.reason as WhittleError,
  }
}

describe('two exports to one destination', () => {
  it(
    'GGUF: exactly one succeeds, the other is told the file is being written, and the winner verifies',
    async () => {
      const dest = path.join(fresh('gguf-race'), 'm.gguf')
      const { value, loser } = oneWinner(
        await Promise.allSettled([
          exportGguf(pool, model, dest, { type: 'F32' }),
          exportGguf(pool, model, dest, { type: 'F32' }),
        ]),
      )
      expect(loser.code).toBe('validation')
      expect(loser.message).toMatch(new RegExp(`^${dest}: the destination is being written by another export`))
      expect(value.file).toBe(dest)
      expect(readFileSync(dest).equals(solo)).toBe(true)
      const g = await readGguf(dest)
      expect(g.infos.map((i) => i.name)).toEqual(value.tensors.map((t) => t.name))
      expect(readdirSync(path.dirname(dest))).toEqual(['m.gguf'])
      // Finished: a later export is refused, and the file stays as it is.
      await expect(exportGguf(pool, model, dest, { type: 'Q8_0' })).rejects.toThrow(
        `${dest}: already exists; choose a new file`,
      )
      expect(readFileSync(dest).equals(solo)).toBe(true)
    },
    scaled(120_000),
  )

  it(
    'folder: exactly one succeeds, the other gets a typed error rather than ENOTEMPTY',
    async () => {
      const dest = path.join(fresh('folder-race'), 'out')
      const { value, loser } = oneWinner(
        await Promise.allSettled([
          exportModel(pool, model, dest, { format: 'safetensors' }),
          exportModel(pool, model, dest, { format: 'safetensors' }),
        ]),
      )
      expect(loser.code).toBe('validation')
      expect(loser.message).toMatch(new RegExp(`^${dest}: the destination is being written by another export`))
      expect(value.out).toBe(dest)
      const back = await loadModel(dest)
      expect(back.tensors.map((t) => t.name).sort()).toEqual(model.tensors.map((t) => t.name).sort())
      for (const t of model.tensors) {
        expect(Array.from(await readTensorF32(back.entry(t.name))), t.name).toEqual(
          Array.from(await readTensorF32(model.entry(t.name))),
        )
      }
      expect(readdirSync(path.dirname(dest))).toEqual(['out'])
    },
    scaled(120_000),
  )

  it(
    'two `whittle convert` processes: one writes the file, the other fails with a clear message',
    async () => {
      const dest = path.join(fresh('cli-race'), 'm.gguf')
      const convert = (): Promise<{ code: number | null; stderr: string }> =>
        new Promise((resolve) => {
          const child = spawn(
            process.execPath,
            [
              path.join(root, 'src-main/cli/bin.mjs'),
              'convert',
              demo,
              '--out',
              dest,
              '--format',
              'gguf',
              '--gguf-type',
              'F32',
            ],
            { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
          )
          let stderr = ''
          child.stderr.on('data', (d) => (stderr += d))
          child.on('exit', (code) => resolve({ code, stderr }))
        })
      const runs = await Promise.all([convert(), convert()])
      expect(runs.map((r) => r.code).sort(), runs.map((r) => r.stderr).join('\n')).toEqual([0, 1])
      // Which message the loser gets depends on whether the winner had finished when it looked; both
      // are the typed refusals, naming the file.
      const lost = runs.find((r) => r.code === 1)!.stderr
      expect(lost).toMatch(
        new RegExp(
          `whittle: ${dest}: (the destination is being written by another export|already exists; choose a new file)`,
        ),
      )
      expect(readFileSync(dest).equals(solo)).toBe(true)
      expect(readdirSync(path.dirname(dest))).toEqual(['m.gguf'])
    },
    scaled(180_000),
  )

  it('a folder made by hand while an export writes is never replaced, even an empty one', async () => {
    for (const filled of [true, false]) {
      const dest = path.join(fresh(`appears-${filled}`), 'out')
      const err = await writeFolderAtomically(dest, async (dir) => {
        writeFileSync(path.join(dir, 'model.safetensors'), 'export')
        mkdirSync(dest)
        if (filled) writeFileSync(path.join(dest, 'mine.txt'), 'user')
      }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(WhittleError)
      expect((err as WhittleError).message).toBe(
        `${dest}: already exists; choose a new folder (exports never overwrite)`,
      )
      expect(readdirSync(dest)).toEqual(filled ? ['mine.txt'] : [])
      expect(readdirSync(path.dirname(dest))).toEqual(['out'])
    }
  })
})

describe.skipIf(process.platform !== 'linux')('folder export durability', () => {
  it('fsyncs the files before the rename and the parent folder after it', async () => {
    const parent = fresh('durable')
    const dest = path.join(parent, 'out')
    const probe = await open(__filename, 'r')
    const proto = Object.getPrototypeOf(probe) as { sync: (this: FileHandle) => Promise<void> }
    await probe.close()
    const original = proto.sync
    const synced: { path: string; destExists: boolean }[] = []
    proto.sync = function (this: FileHandle) {
      synced.push({ path: readlinkSync(`/proc/self/fd/${this.fd}`), destExists: existsSync(dest) })
      return original.call(this)
    }
    let tmpDir = ''
    try {
      await writeFolderAtomically(dest, async (dir) => {
        tmpDir = dir
        writeFileSync(path.join(dir, 'config.json'), '{}')
      })
    } finally {
      proto.sync = original
    }
    const file = synced.findIndex((s) => s.path === path.join(tmpDir, 'config.json'))
    const parentSync = synced.findIndex((s) => s.path === parent && s.destExists)
    expect(file, JSON.stringify(synced)).toBeGreaterThanOrEqual(0)
    expect(synced[file].destExists).toBe(false)
    expect(parentSync, JSON.stringify(synced)).toBeGreaterThan(file)
  })
})

/** Spawns a child export that stops at a known point; resolves once it says it is there. */
async function hangingChild(
  script: string,
  args: string[],
): Promise<{ child: ChildProcess; kill: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'testing', script), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  let stdout = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise((r) => child.on('exit', r))
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (/^hanging at /m.test(stdout)) resolve()
    })
    child.on('exit', (code) => reject(new Error(`the child exited (${code}) before hanging: ${stdout}${stderr}`)))
  })
  return {
    child,
    kill: async () => {
      child.kill('SIGKILL')
      await exited
    },
  }
}

describe('a GGUF export killed part way', () => {
  for (const stage of ['encoding', 'verifying'] as const) {
    it(
      `killed while ${stage}: nothing at the destination; the next export reclaims the lock and cleans up`,
      async () => {
        const dir = fresh(`killed-${stage}`)
        const dest = path.join(dir, 'm.gguf')
        const { child, kill } = await hangingChild('gguf-export-then-hang.ts', [demo, dest, stage])
        try {
          const leftovers = readdirSync(dir).sort()
          const temp = leftovers.find((n) => new RegExp(`^\\.m\\.gguf\\.whittle-tmp-${child.pid}-[0-9a-f]{8}$`).test(n))
          expect(temp, leftovers.join(', ')).toBeDefined()
          expect(leftovers).toEqual(['.m.gguf.whittle-lock', temp].sort())
          // Complete, but not yet checked: it must not be visible under the real name.
          if (stage === 'verifying') expect(statSync(path.join(dir, temp!)).size).toBe(solo.length)
          // Another process holds the destination: a second export is refused at once and touches nothing.
          const busy = await exportGguf(pool, model, dest, { type: 'F32' }).catch((e: unknown) => e)
          expect(busy).toBeInstanceOf(WhittleError)
          expect((busy as WhittleError).message).toContain(`being written by another export (process ${child.pid};`)
          await kill()
          expect(existsSync(dest)).toBe(false)
          expect(readdirSync(dir).sort()).toEqual(leftovers)

          await exportGguf(pool, model, dest, { type: 'F32' })
          expect(readdirSync(dir)).toEqual(['m.gguf'])
          expect(existsSync(lockPathFor(dest))).toBe(false)
          expect(readFileSync(dest).equals(solo)).toBe(true)
        } finally {
          child.kill('SIGKILL')
        }
      },
      scaled(180_000),
    )
  }
})
