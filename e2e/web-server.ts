// Starts `whittle serve` as a child process (the real CLI, the real engine) for one spec file and
// reads the tokened URL it prints.

import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export interface ServedApp {
  url: string
  origin: string
  token: string
  stop(): Promise<void>
}

export async function serveApp(extraArgs: string[] = [], env: Record<string, string> = {}): Promise<ServedApp> {
  const child: ChildProcess = spawn(process.execPath, [path.join(repoRoot, 'src-main/cli/bin.mjs'), 'serve', '--port', '0', ...extraArgs], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`whittle serve did not start: ${stderr}`)), 60_000)
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
