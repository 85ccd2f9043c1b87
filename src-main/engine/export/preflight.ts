// Checks made before any long work whose result will be exported: a read-only or full destination
// should fail in a second, not after minutes of calibration and GPTQ. The export itself checks again at
// the end (the disk may have filled meanwhile), so this is an early warning, not the only guard.

import { access, constants, mkdtemp, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import { assertFreeDestination } from './atomic-folder'
import { assertDiskSpace } from './disk-space'

/** The nearest folder on the way up from `p` that exists (the one a later mkdir -p starts from). */
async function nearestExisting(p: string, dest: string): Promise<string> {
  let at = path.resolve(p)
  for (;;) {
    const s = await stat(at).catch(() => null)
    if (s) {
      if (!s.isDirectory())
        throw new WhittleError('validation', dest, `${at} is a file, so the destination cannot be created under it`)
      return at
    }
    const parent = path.dirname(at)
    if (parent === at) return at
    at = parent
  }
}

function ioFault(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code
  if (code === 'EROFS') return 'is on a read-only filesystem'
  if (code === 'EACCES' || code === 'EPERM') return 'is not writable by this user'
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'has no space left'
  return `cannot be written (${code ?? String(e)})`
}

/**
 * Fails unless `dest` is free (not existing, not overlapping the inputs), its nearest existing parent is
 * writable (probed by creating and removing a folder: access() alone misses some read-only mounts), and
 * that filesystem has room for `predictedBytes`.
 */
export async function assertExportDestination(dest: string, inputs: string[], predictedBytes: number): Promise<void> {
  await assertFreeDestination(dest, inputs)
  const base = await nearestExisting(path.dirname(path.resolve(dest)), dest)
  try {
    await access(base, constants.W_OK)
    const probe = await mkdtemp(path.join(base, '.whittle-probe-'))
    await rm(probe, { recursive: true, force: true })
  } catch (e) {
    throw new WhittleError('io', dest, `the destination folder ${base} ${ioFault(e)}`)
  }
  await assertDiskSpace(base, predictedBytes, `the export to ${path.resolve(dest)}`)
}
