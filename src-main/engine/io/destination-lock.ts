// Exclusive reservation of a destination path, and removal of what killed writers leave beside it.
//
// An export first creates `.NAME.whittle-lock` next to its destination. The lock is made complete (owner
// written) in a private file and then hard-linked into place, so it either exists with its owner or not
// at all, and two exports — in one process or in two — can never both hold it. The loser fails at once
// with a clear error instead of racing to a rename that silently replaces the winner's file.
//
// A process killed mid-export cannot remove its lock or its temporaries. Both carry the owner's pid, so
// the next writer of the same destination can tell a dead process's leftovers (removed) from a running
// export's (kept). Files older than the current boot are leftovers whatever their pid says, since pids
// are reused after a restart.

import { randomBytes } from 'node:crypto'
import { link, lstat, open, readFile, readdir, rm, stat, unlink } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { WhittleError } from '../errors'

/** A lock (or reclaim guard) whose owner cannot be read is a leftover once it is this old. */
const UNREADABLE_LOCK_MS = 60_000
/** Clock skew tolerated when comparing a file's time with the boot time. */
const BOOT_SLACK_MS = 60_000

interface LockOwner {
  pid: number
  host: string
  token: string
}

export interface DestinationLock {
  /** The lock file's path. */
  readonly path: string
  /** Removes the lock (only if it is still this export's). */
  release(): Promise<void>
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code
}

export function lockPathFor(dest: string): string {
  const abs = path.resolve(dest)
  return path.join(path.dirname(abs), `.${path.basename(abs)}.whittle-lock`)
}

/** True when a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return errno(e) === 'EPERM'
  }
}

function bootTimeMs(): number {
  return Date.now() - os.uptime() * 1000
}

/** Written before this machine last started: its writer is gone, whatever process has its pid now. */
function fromEarlierBoot(mtimeMs: number): boolean {
  return mtimeMs < bootTimeMs() - BOOT_SLACK_MS
}

export function busyError(dest: string, pid: number | null): WhittleError {
  const who =
    pid === null ? '' : ` (process ${pid}; if no export is running, delete ${path.basename(lockPathFor(dest))})`
  return new WhittleError('validation', dest, `the destination is being written by another export${who}`)
}

export function alreadyExistsError(dest: string, kind: 'file' | 'folder'): WhittleError {
  return new WhittleError('validation', dest, `already exists; choose a new ${kind} (exports never overwrite)`)
}

/** Why a new file cannot be made in `dir`: the folder is missing, or the OS refused. */
export async function cannotWriteError(dir: string, e: unknown): Promise<WhittleError> {
  const missing = (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') && !(await pathExists(dir).catch(() => true))
  if (missing) return new WhittleError('not-found', dir, 'no such folder to write into')
  return new WhittleError('io', dir, `cannot write here (${errno(e) ?? String(e)})`)
}

async function readOwner(lock: string): Promise<{ owner: LockOwner | null; mtimeMs: number } | 'gone'> {
  let mtimeMs: number
  let text: string
  try {
    mtimeMs = (await lstat(lock)).mtimeMs
    text = await readFile(lock, 'utf8')
  } catch (e) {
    if (errno(e) === 'ENOENT') return 'gone'
    throw e
  }
  try {
    const o = JSON.parse(text) as Partial<LockOwner>
    if (
      Number.isSafeInteger(o.pid) &&
      (o.pid as number) > 0 &&
      typeof o.host === 'string' &&
      typeof o.token === 'string'
    ) {
      return { owner: o as LockOwner, mtimeMs }
    }
  } catch {
    // unreadable: judged by its age below
  }
  return { owner: null, mtimeMs }
}

function isStale(found: { owner: LockOwner | null; mtimeMs: number }): boolean {
  if (fromEarlierBoot(found.mtimeMs)) return true
  if (!found.owner) return Date.now() - found.mtimeMs > UNREADABLE_LOCK_MS
  // Another machine's process (a shared network folder) cannot be checked from here.
  if (found.owner.host !== os.hostname()) return false
  return !isProcessAlive(found.owner.pid)
}

/** Creates `file` holding `content`, failing with EEXIST if it exists; never visible half-written. */
async function createComplete(file: string, content: string): Promise<void> {
  const draft = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.draft`
  const h = await open(draft, 'wx')
  try {
    await h.writeFile(content)
  } finally {
    await h.close()
  }
  try {
    await link(draft, file)
  } catch (e) {
    const code = errno(e)
    if (code === 'EEXIST' || !LINK_UNSUPPORTED.has(code ?? '')) throw e
    // No hard links here (FAT, some network shares): an exclusive create is just as exclusive; a writer
    // killed before its owner is written leaves an unreadable lock, reclaimed once old.
    const h2 = await open(file, 'wx')
    try {
      await h2.writeFile(content)
    } finally {
      await h2.close()
    }
  } finally {
    await unlink(draft).catch(() => {})
  }
}

/** Errors from link() that mean "this filesystem has no hard links", not "the target exists". */
export const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK'])

/**
 * Removes a lock that was judged stale, unless it changed since: the removal runs under a short-lived
 * guard so two exports reclaiming the same dead lock cannot remove each other's fresh one.
 * Returns false when another export is reclaiming it right now.
 */
async function reclaim(lock: string, stale: { owner: LockOwner | null; mtimeMs: number }): Promise<boolean> {
  const guard = `${lock}.reclaim`
  try {
    await createComplete(guard, JSON.stringify({ pid: process.pid }))
  } catch (e) {
    if (errno(e) !== 'EEXIST') throw e
    const g = await lstat(guard).catch(() => null)
    // A guard is held for milliseconds; an old one belongs to a process killed while holding it.
    if (g && Date.now() - g.mtimeMs > UNREADABLE_LOCK_MS) await unlink(guard).catch(() => {})
    return false
  }
  try {
    const now = await readOwner(lock)
    if (now === 'gone') return true
    const same = now.mtimeMs === stale.mtimeMs && now.owner?.token === stale.owner?.token
    if (same)
      await unlink(lock).catch((e) => {
        if (errno(e) !== 'ENOENT') throw e
      })
    return same
  } finally {
    await unlink(guard).catch(() => {})
  }
}

/**
 * Reserves `dest` for one writer: creates its lock file or fails with a typed "being written by another
 * export" error. A lock left by a dead process is reclaimed. The caller must release the lock.
 */
export async function reserveDestination(dest: string): Promise<DestinationLock> {
  const abs = path.resolve(dest)
  const lock = lockPathFor(abs)
  const me: LockOwner = { pid: process.pid, host: os.hostname(), token: randomBytes(8).toString('hex') }
  let lastOwner: number | null = null
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await createComplete(lock, JSON.stringify(me))
      return {
        path: lock,
        async release() {
          const found = await readOwner(lock).catch(() => 'gone' as const)
          if (found !== 'gone' && found.owner?.token === me.token) await unlink(lock).catch(() => {})
        },
      }
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw await cannotWriteError(path.dirname(abs), e)
    }
    const found = await readOwner(lock).catch(async (e: unknown) => {
      throw await cannotWriteError(path.dirname(abs), e)
    })
    if (found === 'gone') continue // released between our two looks: try again
    lastOwner = found.owner?.pid ?? null
    if (!isStale(found)) throw busyError(abs, lastOwner)
    if (!(await reclaim(lock, found))) throw busyError(abs, null)
  }
  throw busyError(abs, lastOwner)
}

/**
 * A fresh temporary name beside `dest`, for a file or a folder. The pid in it lets a later writer tell a
 * dead process's leftovers from a running write's; "whittle-tmp" keeps it apart from anyone else's files.
 */
export function temporaryPathFor(dest: string): string {
  const abs = path.resolve(dest)
  return path.join(
    path.dirname(abs),
    `.${path.basename(abs)}.whittle-tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  )
}

/** Whittle's temporaries (of any destination in a folder), each naming its writer's pid. */
const TEMP_NAME = /^\..+\.whittle-(?:tmp-(\d+)-|lock(?:\.reclaim)?\.(\d+)\.)[0-9a-f]{8}(?:\.draft)?$/
const LOCK_NAME = /^\..+\.whittle-lock$/

/**
 * Removes what killed writers left in `parent`: temporary files and folders and lock drafts whose
 * process is gone (or that predate the current boot), and locks judged stale. Besides Whittle's own
 * names, `.BASE.<pid>.<hex>.tmp` (single-file temporaries of earlier versions) is removed for `base`,
 * the destination being written. Returns the names removed.
 */
export async function removeStaleLeftovers(parent: string, base: string): Promise<string[]> {
  const legacy = `.${base}.`
  const removed: string[] = []
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const full = path.join(parent, name)
    if (LOCK_NAME.test(name)) {
      const found = await readOwner(full).catch(() => 'gone' as const)
      if (found !== 'gone' && isStale(found) && (await reclaim(full, found).catch(() => false))) removed.push(name)
      continue
    }
    const m = TEMP_NAME.exec(name)
    const old = name.startsWith(legacy) ? /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(legacy.length)) : null
    const pid = Number(m ? (m[1] ?? m[2]) : old?.[1])
    if (!Number.isSafeInteger(pid) || pid <= 0) continue
    const mtimeMs = (await lstat(full).catch(() => null))?.mtimeMs
    if (mtimeMs === undefined) continue
    if (isProcessAlive(pid) && !fromEarlierBoot(mtimeMs)) continue
    await rm(full, { recursive: true, force: true })
    removed.push(name)
  }
  return removed
}

/** Whether anything is at `p`; a fault other than "no such entry" is a typed error, not a guess. */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return false
    throw new WhittleError('io', p, `cannot check whether it exists (${errno(e) ?? String(e)})`)
  }
}

/** Errors from fsync of a folder on platforms or filesystems that cannot do it (Windows, some shares). */
const DIR_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EBADF'])

/**
 * Flushes a folder's entries (a rename or a new name in it) to disk, so the file a caller just put in
 * place is still there after a power loss. Skipped where the platform cannot open a folder for it.
 */
export async function fsyncDirectory(dir: string): Promise<void> {
  let h
  try {
    h = await open(dir, 'r')
  } catch (e) {
    if (DIR_SYNC_UNSUPPORTED.has(errno(e) ?? '')) return
    throw new WhittleError('io', dir, `cannot open the folder to flush it (${errno(e) ?? String(e)})`)
  }
  try {
    await h.sync()
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has(errno(e) ?? ''))
      throw new WhittleError('io', dir, `flushing the folder to disk failed (${errno(e) ?? String(e)})`)
  } finally {
    await h.close()
  }
}
