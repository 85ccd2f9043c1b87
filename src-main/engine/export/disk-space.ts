// Free space is checked before an export starts, so a full disk fails in a second with a clear message
// rather than after minutes of writing (and the temporary folder is never left half-written for lack
// of room). The estimate is of the weights; a margin covers the small files and filesystem overhead.

import { statfs } from 'node:fs/promises'
import path from 'node:path'
import { formatBytes } from '../../contract/units'
import { WhittleError } from '../errors'

/** Extra room asked for beyond the estimate: 2% plus 64 MiB. */
export function withMargin(bytes: number): number {
  return Math.ceil(bytes * 1.02) + (64 << 20)
}

/** Bytes available to this user on the filesystem holding `dir` (or its nearest existing parent). */
export async function freeBytes(dir: string): Promise<number> {
  let at = path.resolve(dir)
  for (;;) {
    try {
      const s = await statfs(at)
      return s.bavail * s.bsize
    } catch (e) {
      const parent = path.dirname(at)
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || parent === at) throw e
      at = parent
    }
  }
}

/** Fails when the filesystem of `dir` has less than `bytes` (plus margin) free; `what` names the export. */
export async function assertDiskSpace(dir: string, bytes: number, what: string): Promise<void> {
  const need = withMargin(bytes)
  const free = await freeBytes(dir)
  if (free < need) {
    throw new WhittleError(
      'io',
      dir,
      `not enough free disk space for ${what}: it needs about ${formatBytes(need)}, ${formatBytes(free)} are free`,
    )
  }
}
