// Single-file writes: exclusive reservation (two writers, one destination), verification before the file
// gets its name, what dead writers leave behind, and the fsyncs that make a finished write durable.

import { spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  utimesSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { writeFileAtomically } from './atomic-writer'
import { lockPathFor, removeStaleLeftovers, reserveDestination } from './destination-lock'

const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'whittle-atomic-')))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The pid of a process that has exited (the kernel does not hand it out again right away). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', ''])
  expect(r.status).toBe(0)
  return r.pid!
}

const bytes = (...v: number[]): Uint8Array => Uint8Array.from(v)

/** Lets other writers run between chunks, so two writes to one path really overlap. */
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5))

async function rejection(p: Promise<unknown>): Promise<WhittleError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(WhittleError)
  return e as WhittleError
}

describe('exclusive single-file writes', () => {
  it('of two concurrent writes to one path exactly one succeeds; the other is told the destination is busy', async () => {
    const p = path.join(dir, 'race.bin')
    const write = (v: number): Promise<number> =>
      writeFileAtomically(
        p,
        async (w) => {
          for (let i = 0; i < 5; i++) {
            await w.write(bytes(v, i))
            await tick()
          }
        },
        { exclusive: true },
      )
    const results = await Promise.allSettled([write(1), write(2)])
    const won = results.findIndex((r) => r.status === 'fulfilled')
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    const lost = results[1 - won] as PromiseRejectedResult
    expect(lost.reason).toBeInstanceOf(WhittleError)
    expect(lost.reason.code).toBe('validation')
    expect(lost.reason.message).toBe(
      `${p}: the destination is being written by another export (process ${process.pid}; if no export is running, delete .race.bin.whittle-lock)`,
    )
    const v = won + 1
    expect(Array.from(readFileSync(p))).toEqual([v, 0, v, 1, v, 2, v, 3, v, 4])
    expect(readdirSync(dir).filter((n) => n.startsWith('.race.bin'))).toEqual([])
    // Once it is finished, the next writer is told it exists, and the file is untouched.
    const again = await rejection(writeFileAtomically(p, async (w) => w.write(bytes(9)), { exclusive: true }))
    expect(again.message).toBe(`${p}: already exists; choose a new file (exports never overwrite)`)
    expect(Array.from(readFileSync(p))).toEqual([v, 0, v, 1, v, 2, v, 3, v, 4])
  })

  it('never replaces a file that appears while it writes (link, not rename)', async () => {
    const p = path.join(dir, 'appears.bin')
    const err = await rejection(
      writeFileAtomically(
        p,
        async (w) => {
          await w.write(bytes(1, 2, 3))
          writeFileSync(p, 'someone else') // a program that ignores Whittle's lock
        },
        { exclusive: true },
      ),
    )
    expect(err.message).toMatch(/already exists/)
    expect(readFileSync(p, 'utf8')).toBe('someone else')
    expect(readdirSync(dir).filter((n) => n.startsWith('.appears.bin'))).toEqual([])
  })

  it('without exclusive, replaces the file as before', async () => {
    const p = path.join(dir, 'replace.bin')
    await writeFileAtomically(p, async (w) => w.write(bytes(1)))
    await writeFileAtomically(p, async (w) => w.write(bytes(2)))
    expect(Array.from(readFileSync(p))).toEqual([2])
  })
})

describe('verification before the file gets its name', () => {
  it('verify reads the complete temporary file while nothing is at the destination', async () => {
    const p = path.join(dir, 'verified.bin')
    let seen: { at: string; content: number[]; destExists: boolean } | null = null
    await writeFileAtomically(p, async (w) => w.write(bytes(4, 5, 6)), {
      exclusive: true,
      verify: async (temp) => {
        seen = { at: temp, content: Array.from(readFileSync(temp)), destExists: existsSync(p) }
      },
    })
    expect(seen).not.toBeNull()
    expect(seen!.at).not.toBe(p)
    expect(path.dirname(seen!.at)).toBe(dir)
    expect(seen!.content).toEqual([4, 5, 6])
    expect(seen!.destExists).toBe(false)
    expect(Array.from(readFileSync(p))).toEqual([4, 5, 6])
    expect(existsSync(seen!.at)).toBe(false)
  })

  it('a failed verification leaves no file, no temporary and no lock', async () => {
    const p = path.join(dir, 'rejected.bin')
    const err = await rejection(
      writeFileAtomically(p, async (w) => w.write(bytes(1)), {
        exclusive: true,
        verify: async () => {
          throw new WhittleError('format', p, 'verification failed: test')
        },
      }),
    )
    expect(err.code).toBe('format')
    expect(readdirSync(dir).filter((n) => n.includes('rejected.bin'))).toEqual([])
  })
})

describe('leftovers of killed writers', () => {
  it('removes temporaries and locks of dead processes in the folder, keeps live ones and everything else', async () => {
    const sub = path.join(dir, 'leftovers')
    mkdirSync(sub)
    const dead = deadPid()
    const owner = (pid: number): string => JSON.stringify({ pid, host: os.hostname(), token: String(pid) })
    const gone = {
      [`.m.gguf.whittle-tmp-${dead}-0123abcd`]: 'partial', // this destination's, killed mid-write
      [`.m.gguf.${dead}.0123abcd.tmp`]: 'partial', // the same, as earlier versions named it
      [`.other.gguf.whittle-tmp-${dead}-89abcdef`]: 'partial', // another destination's in the same folder
      [`.other.gguf.whittle-lock.${dead}.89abcdef.draft`]: owner(dead), // a lock never put in place
      '.other.gguf.whittle-lock': owner(dead),
    }
    const kept = {
      [`.m.gguf.whittle-tmp-${process.ppid}-89abcdef`]: 'being written', // a running export's
      '.busy.gguf.whittle-lock': owner(process.ppid),
      [`.m.gguf.x.${dead}.0123abcd.tmp`]: 'not ours', // an old-style name of another file: left alone
      '.m.gguf.notes': "the user's",
      'keep.txt': "the user's",
    }
    for (const [n, text] of Object.entries({ ...gone, ...kept })) writeFileSync(path.join(sub, n), text)
    const folder = path.join(sub, `.m.gguf.whittle-tmp-${dead}-aaaabbbb`) // a folder export's
    mkdirSync(folder)
    writeFileSync(path.join(folder, 'model.safetensors'), 'partial')
    writeFileSync(lockPathFor(path.join(sub, 'm.gguf')), owner(dead))

    await writeFileAtomically(path.join(sub, 'm.gguf'), async (w) => w.write(bytes(7)), { exclusive: true })
    expect(readdirSync(sub).sort()).toEqual([...Object.keys(kept), 'm.gguf'].sort())
    for (const [n, text] of Object.entries(kept)) expect(readFileSync(path.join(sub, n), 'utf8')).toBe(text)
  })

  it('a lock whose process is alive holds; one from before this boot, or unreadable and old, does not', async () => {
    const p = path.join(dir, 'held.bin')
    const lock = lockPathFor(p)
    writeFileSync(lock, JSON.stringify({ pid: process.ppid, host: os.hostname(), token: 'parent' }))
    const busy = await rejection(writeFileAtomically(p, async (w) => w.write(bytes(1)), { exclusive: true }))
    expect(busy.message).toContain(`being written by another export (process ${process.ppid};`)
    expect(existsSync(p)).toBe(false)
    expect(readFileSync(lock, 'utf8')).toContain('parent') // not removed by the loser

    const beforeBoot = (Date.now() - os.uptime() * 1000 - 3600_000) / 1000
    utimesSync(lock, beforeBoot, beforeBoot)
    await writeFileAtomically(p, async (w) => w.write(bytes(1)), { exclusive: true })
    expect(existsSync(lock)).toBe(false)

    const q = path.join(dir, 'torn.bin')
    writeFileSync(lockPathFor(q), '') // a writer killed between creating and filling it (no hard links)
    expect(
      (await rejection(writeFileAtomically(q, async (w) => w.write(bytes(1)), { exclusive: true }))).message,
    ).toMatch(/being written by another export$/)
    const old = (Date.now() - 120_000) / 1000
    utimesSync(lockPathFor(q), old, old)
    await writeFileAtomically(q, async (w) => w.write(bytes(1)), { exclusive: true })
    expect(readdirSync(dir).filter((n) => n.includes('torn.bin'))).toEqual(['torn.bin'])
  })

  it('two exports reclaiming one dead lock: exactly one gets it', async () => {
    const p = path.join(dir, 'reclaim.bin')
    writeFileSync(lockPathFor(p), JSON.stringify({ pid: deadPid(), host: os.hostname(), token: 'dead' }))
    const results = await Promise.allSettled([reserveDestination(p), reserveDestination(p), reserveDestination(p)])
    const held = results.filter((r) => r.status === 'fulfilled')
    expect(held).toHaveLength(1)
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason.message).toMatch(/being written by another export/)
    await (held[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof reserveDestination>>>).value.release()
    expect(existsSync(lockPathFor(p))).toBe(false)
    expect(await removeStaleLeftovers(dir, 'reclaim.bin')).toEqual([])
  })
})

describe.skipIf(process.platform !== 'linux')('durability', () => {
  it('fsyncs the file before it gets its name and the folder after', async () => {
    const p = path.join(dir, 'durable.bin')
    // Record every real fsync with the path its descriptor names at that moment.
    const probe = await open(__filename, 'r')
    const proto = Object.getPrototypeOf(probe) as { sync: (this: FileHandle) => Promise<void> }
    await probe.close()
    const original = proto.sync
    const synced: { path: string; destExists: boolean }[] = []
    proto.sync = function (this: FileHandle) {
      synced.push({ path: readlinkSync(`/proc/self/fd/${this.fd}`), destExists: existsSync(p) })
      return original.call(this)
    }
    let temp = ''
    try {
      await writeFileAtomically(p, async (w) => w.write(bytes(1, 2)), {
        exclusive: true,
        verify: async (t) => {
          temp = t
        },
      })
    } finally {
      proto.sync = original
    }
    const fileSync = synced.findIndex((s) => s.path === temp)
    const dirSync = synced.findIndex((s) => s.path === dir)
    expect(fileSync, JSON.stringify(synced)).toBeGreaterThanOrEqual(0)
    expect(synced[fileSync].destExists).toBe(false)
    expect(dirSync, JSON.stringify(synced)).toBeGreaterThan(fileSync)
    expect(synced[dirSync].destExists).toBe(true)
  })
})
