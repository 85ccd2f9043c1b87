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
  /** The server's own output and fate (exit code or signal), for a failed test's report. */
  log(): string
  stop(): Promise<void>
}

/** How much of the server's output a failure report keeps (the tail). */
const LOG_TAIL_CHARS = 20_000

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
  let output = ''
  const keep = (d: unknown): void => {
    output = (output + String(d)).slice(-LOG_TAIL_CHARS)
  }
  child.stderr!.on('data', (d) => {
    stderr += d
    keep(d)
  })
  child.stdout!.on('data', keep)
  child.once('exit', (code, signal) => keep(`\n[whittle serve exited: code ${code}, signal ${signal}]\n`))
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
    log: () => output,
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
  // A failed test says what the engine said: a hang or a crash there is otherwise invisible.
  test.afterEach(async ({}, testInfo) => {
    if (!app || testInfo.status === testInfo.expectedStatus) return
    const log = app.log() || '(the server printed nothing)'
    await testInfo.attach('whittle-serve.log', { body: log, contentType: 'text/plain' })
    console.error(`--- whittle serve output (tail) for "${testInfo.title}" ---\n${log}\n--- end ---`)
  })
  test.afterAll(async () => {
    await app?.stop()
  })
  return () => {
    if (!app) throw new Error('the app is not being served (useServedApp registers beforeAll)')
    return app
  }
}
