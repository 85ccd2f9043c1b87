// Exports are written into a temporary folder beside the destination, fsynced, verified, then renamed
// into place: a crash or kill mid-export leaves no partial model at the destination, and the user's
// input is never touched. Existing destinations are refused rather than overwritten.

import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import { assertDiskSpace } from './disk-space'

export async function assertFreeDestination(dest: string, inputs: string[]): Promise<void> {
  const abs = path.resolve(dest)
  for (const input of inputs) {
    const a = path.resolve(input)
    if (abs === a || a.startsWith(abs + path.sep) || abs.startsWith(a + path.sep) && (await isFile(a))) {
      throw new WhittleError('validation', dest, `the export destination overlaps the input ${input}; choose another folder`)
    }
  }
  const exists = await stat(abs).then(() => true, () => false)
  if (exists) throw new WhittleError('validation', dest, 'already exists; choose a new folder (exports never overwrite)')
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A process killed mid-export (SIGKILL, power loss) cannot remove its temporary folder; the destination
 * itself was never created. The next export to the same destination removes such leftovers, only those
 * whose process is gone.
 */
export async function removeStaleTemporaries(parent: string, base: string): Promise<string[]> {
  const prefix = `.${base}.whittle-tmp-`
  const removed: string[] = []
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1])
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue
    await rm(path.join(parent, name), { recursive: true, force: true })
    removed.push(name)
  }
  return removed
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false)
}

async function fsyncPath(p: string): Promise<void> {
  const h = await open(p, 'r')
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

/**
 * Runs `write(tmpDir)`, fsyncs every file in it, runs `verify(tmpDir)`, then renames tmpDir to dest.
 * On any failure the temporary folder is removed and the error is rethrown. With `expectedBytes`, the
 * free space is checked first.
 */
export async function writeFolderAtomically(dest: string, write: (dir: string) => Promise<void>, verify?: (dir: string) => Promise<void>, expectedBytes?: number): Promise<string> {
  const abs = path.resolve(dest)
  const parent = path.dirname(abs)
  await mkdir(parent, { recursive: true }).catch((e) => {
    throw new WhittleError('io', parent, `cannot create the destination's parent folder (${(e as NodeJS.ErrnoException).code ?? e})`)
  })
  if (expectedBytes !== undefined) await assertDiskSpace(parent, expectedBytes, `the export to ${abs}`)
  await removeStaleTemporaries(parent, path.basename(abs))
  // The pid in the name lets a later export tell a dead process's leftovers from a running export's.
  const tmp = path.join(parent, `.${path.basename(abs)}.whittle-tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await mkdir(tmp)
  } catch (e) {
    throw new WhittleError('io', parent, `cannot write here (${(e as NodeJS.ErrnoException).code ?? e})`)
  }
  try {
    await write(tmp)
    for (const f of await readdir(tmp)) await fsyncPath(path.join(tmp, f))
    await verify?.(tmp)
    await rename(tmp, abs)
    return abs
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
}
