// Recently opened models, persisted as a small JSON file in the user's config folder.
// A corrupt file is treated as empty rather than an error: recents are a convenience.

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { RecentModel } from '../contract/api'

const MAX_RECENTS = 12

export function defaultConfigDir(): string {
  if (process.env.WHITTLE_CONFIG_DIR) return process.env.WHITTLE_CONFIG_DIR
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config')
  return path.join(base, 'whittle')
}

export class RecentModels {
  constructor(private readonly file: string) {}

  async list(): Promise<RecentModel[]> {
    try {
      const data: unknown = JSON.parse(await readFile(this.file, 'utf8'))
      if (!Array.isArray(data)) return []
      return data
        .filter((r): r is RecentModel => typeof r?.path === 'string' && typeof r?.openedAt === 'string')
        .slice(0, MAX_RECENTS)
    } catch {
      return []
    }
  }

  async has(p: string): Promise<boolean> {
    return (await this.list()).some((r) => r.path === p)
  }

  async add(p: string): Promise<void> {
    const list = (await this.list()).filter((r) => r.path !== p)
    list.unshift({ path: p, openedAt: new Date().toISOString() })
    await mkdir(path.dirname(this.file), { recursive: true })
    const tmp = `${this.file}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify(list.slice(0, MAX_RECENTS), null, 1))
    await rename(tmp, this.file)
  }
}
