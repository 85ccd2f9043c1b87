// Starts `whittle serve` as a child process (the real CLI, the real engine) for one spec file and
// reads the tokened URL it prints.

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from '@playwright/test'
import { fileURLToPath } from 'node:url'
import { scaled } from '../src-main/engine/testing/time-factor'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export interface ServedApp {
  url: string
  origin: string
  token: string
  stop(): Promise<void>
}

export async function serveApp(extraArgs: string[] = [], env: Record<string, string> = {}): Promise<ServedApp> {
  const child: ChildProcess = spawn(
    process.execPath,
    [path.join(repoRoot, 'src-main/cli/bin.mjs'), 'serve', '--port', '0', ...extraArgs],
    {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`whittle serve did not start: ${stderr}`)), scaled(120_000))
    child.stdout!.on('data', (d) => {
      out += d
      const m = /(http:\/\/\S+token=\w+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.once('exit', (code) => reject(new Error(`whittle serve exited with ${code}: ${stderr}`)))
  })
  const u = new URL(url)
  return {
    url,
    origin: u.origin,
    token: u.searchParams.get('token')!,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

/**
 * Serves the app for the spec file that calls this (a fresh config folder, so recent models never leak
 * between specs), stopped after its tests; `env` adds variables (e.g. WHITTLE_EXPORT_DIR). Returns a getter.
 */
export function useServedApp(env: Record<string, string> = {}): () => ServedApp {
  let app: ServedApp | undefined
  test.beforeAll(async () => {
    app = await serveApp([], { WHITTLE_CONFIG_DIR: mkdtempSync(path.join(os.tmpdir(), 'whittle-e2e-')), ...env })
  })
  test.afterAll(async () => {
    await app?.stop()
  })
  return () => {
    if (!app) throw new Error('the app is not being served (useServedApp registers beforeAll)')
    return app
  }
}
