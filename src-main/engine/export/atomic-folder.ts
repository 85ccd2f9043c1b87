// Exports are written into a temporary folder beside the destination, fsynced, verified, then renamed
// into place: a crash or kill mid-export leaves no partial model at the destination, and the user's
// input is never touched. Existing destinations are refused rather than overwritten, and the destination
// is reserved for the whole export, so of two exports to one folder exactly one writes it.

import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../errors'
import {
  alreadyExistsError,
  fsyncDirectory,
  pathExists,
  removeStaleLeftovers,
  reserveDestination,
  temporaryPathFor,
} from '../io/destination-lock'
import { assertDiskSpace } from './disk-space'

export async function assertFreeDestination(dest: string, inputs: string[]): Promise<void> {
  const abs = path.resolve(dest)
  for (const input of inputs) {
    const a = path.resolve(input)
    if (abs === a || a.startsWith(abs + path.sep) || (abs.startsWith(a + path.sep) && (await isFile(a)))) {
      throw new WhittleError(
        'validation',
        dest,
        `the export destination overlaps the input ${input}; choose another folder`,
      )
    }
  }
  // An early, friendly refusal; writeFolderAtomically checks again once it holds the destination.
  if (await pathExists(abs)) throw alreadyExistsError(dest, 'folder')
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  )
}

/** Flushes every file (and nested folder) under `dir`, then `dir`'s own entries. */
async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) await fsyncTree(p)
    else if (entry.isFile()) {
      const h = await open(p, 'r')
      try {
        await h.sync()
      } finally {
        await h.close()
      }
    }
  }
  await fsyncDirectory(dir)
}

/** What a rename onto an existing folder or file fails with (Linux, macOS, Windows). */
const TARGET_TAKEN = new Set(['EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR'])

/**
 * Reserves dest (a second export to it fails with "being written by another export"), runs
 * `write(tmpDir)`, fsyncs everything in it, runs `verify(tmpDir)`, renames tmpDir to dest and fsyncs the
 * parent folder so the rename survives a power loss. On any failure the temporary folder is removed and
 * the error is rethrown. With `expectedBytes`, the free space is checked first. Temporaries that killed
 * exports left beside dest are removed first.
 */
export async function writeFolderAtomically(
  dest: string,
  write: (dir: string) => Promise<void>,
  verify?: (dir: string) => Promise<void>,
  expectedBytes?: number,
): Promise<string> {
  const abs = path.resolve(dest)
  const parent = path.dirname(abs)
  await mkdir(parent, { recursive: true }).catch((e) => {
    throw new WhittleError(
      'io',
      parent,
      `cannot create the destination's parent folder (${(e as NodeJS.ErrnoException).code ?? e})`,
    )
  })
  const lock = await reserveDestination(abs)
  try {
    if (await pathExists(abs)) throw alreadyExistsError(abs, 'folder')
    if (expectedBytes !== undefined) await assertDiskSpace(parent, expectedBytes, `the export to ${abs}`)
    await removeStaleLeftovers(parent, path.basename(abs))
    const tmp = temporaryPathFor(abs)
    try {
      await mkdir(tmp)
    } catch (e) {
      throw new WhittleError('io', parent, `cannot write here (${(e as NodeJS.ErrnoException).code ?? e})`)
    }
    try {
      await write(tmp)
      await fsyncTree(tmp)
      await verify?.(tmp)
      // The lock keeps other exports out; this keeps out a folder someone made by hand meanwhile (rename
      // would quietly replace an empty one).
      if (await pathExists(abs)) throw alreadyExistsError(abs, 'folder')
      try {
        await rename(tmp, abs)
      } catch (e) {
        if (TARGET_TAKEN.has((e as NodeJS.ErrnoException).code ?? '')) throw alreadyExistsError(abs, 'folder')
        throw new WhittleError(
          'io',
          abs,
          `cannot move the finished export into place (${(e as NodeJS.ErrnoException).code ?? e})`,
        )
      }
    } catch (e) {
      await rm(tmp, { recursive: true, force: true })
      throw e
    }
    await fsyncDirectory(parent)
    return abs
  } finally {
    await lock.release()
  }
}
