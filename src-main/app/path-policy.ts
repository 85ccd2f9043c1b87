// Which paths the desktop app's main process may touch on the renderer's say-so.
// In Electron the engine runs in the main process with the user's full file access, so a compromised
// renderer must not be able to name arbitrary files. A path argument is accepted only when the user
// chose it outside the renderer's reach:
// - read: a path from a native dialog, a drop (seen by the preload), the command line, or the recents
//   list, or a file inside a folder granted for reading (the bundled texts, the export folder);
// - write: a destination inside a folder granted for writing (the export folder).
// Web mode has no such policy: there the token-holding user types paths, which is their own choice.
// Every path argument reaches this check through one place (WhittleService.handle), listed by validate.ts.

import { realpath } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../engine/errors'

export type PathAccess = 'read' | 'write'

/** One path argument of a call, as validate.ts finds it: which argument, the absolute path, and its use. */
export interface PathUse {
  arg: string
  path: string
  access: PathAccess
}

export interface PathPolicyOptions {
  /** Paths the user named outside the UI (command line). */
  chosen?: string[]
  /** Folders whose files may be read (bundled resources). */
  readFolders?: string[]
  /** Folders that may receive new files and folders (the export folder); also readable. */
  writeFolders?: string[]
  /** The recents list: models the user opened before. */
  isRecent?: (p: string) => Promise<boolean>
}

export class PathPolicy {
  private readonly chosen = new Set<string>()
  private readonly readFolders: string[]
  private readonly writeFolders: string[]
  private readonly isRecent: (p: string) => Promise<boolean>

  constructor(options: PathPolicyOptions = {}) {
    for (const p of options.chosen ?? []) this.choose(p)
    this.readFolders = (options.readFolders ?? []).map((p) => path.resolve(p))
    this.writeFolders = (options.writeFolders ?? []).map((p) => path.resolve(p))
    this.isRecent = options.isRecent ?? (async () => false)
  }

  /** Records a path the user chose (dialog, drop, command line): it may be read from now on. */
  choose(p: string): void {
    this.chosen.add(path.resolve(p))
  }

  /** Records a file this session wrote (an export's report): it may be read back. */
  grantRead(p: string): void {
    this.chosen.add(path.resolve(p))
  }

  async check(use: PathUse): Promise<void> {
    const p = path.resolve(use.path)
    if (use.access === 'read') {
      if (
        this.chosen.has(p) ||
        (await this.isRecent(p)) ||
        (await this.insideAny(p, [...this.readFolders, ...this.writeFolders]))
      )
        return
      throw new WhittleError(
        'validation',
        p,
        `${use.arg}: not a path you chose: use Browse… or drop the file on the window`,
      )
    }
    if (await this.insideAny(p, this.writeFolders)) return
    throw new WhittleError(
      'validation',
      p,
      `${use.arg}: the desktop app writes exports only inside ${this.writeFolders.length ? this.writeFolders.join(' or ') : 'a folder you chose'}`,
    )
  }

  /**
   * Strictly inside one of the folders, both as written and after resolving symlinks: a link inside the
   * folder that points elsewhere does not carry the grant with it.
   */
  private async insideAny(p: string, folders: string[]): Promise<boolean> {
    const candidates = folders.filter((f) => isStrictlyInside(p, f))
    if (candidates.length === 0) return false
    const real = await realpathOfNearest(p)
    for (const f of candidates) if (isStrictlyInside(real, await realpathOfNearest(f))) return true
    return false
  }
}

export function isStrictlyInside(p: string, folder: string): boolean {
  const rel = path.relative(folder, p)
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)
}

/** The real path of p, or of its nearest existing ancestor with the rest appended (for paths not created yet). */
export async function realpathOfNearest(p: string): Promise<string> {
  const rest: string[] = []
  let at = path.resolve(p)
  for (;;) {
    const real = await realpath(at).catch(() => null)
    if (real !== null) return path.join(real, ...rest.reverse())
    const up = path.dirname(at)
    if (up === at) return path.resolve(p)
    rest.push(path.basename(at))
    at = up
  }
}
