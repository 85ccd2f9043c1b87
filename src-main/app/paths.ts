// Where the app's own files are, found by walking up from this module to Whittle's package.json.
// Works the same from sources (tsx, vitest) and from electron-vite's bundle in out/main.

import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

let cachedRoot: string | null = null

export function appRoot(): string {
  if (cachedRoot) return cachedRoot
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = path.join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'whittle') return (cachedRoot = dir)
      } catch {
        // keep walking
      }
    }
    const up = path.dirname(dir)
    if (up === dir) throw new Error('cannot locate the Whittle installation (package.json named "whittle")')
    dir = up
  }
}

export function appVersion(): string {
  return JSON.parse(readFileSync(path.join(appRoot(), 'package.json'), 'utf8')).version
}

/** The bundled demo model (stories260K), or null in a build that lacks it. */
export function demoModelPath(): string | null {
  const p = path.join(appRoot(), 'resources', 'demo', 'stories260K')
  return existsSync(path.join(p, 'config.json')) ? p : null
}

/** The built renderer that web mode serves and Electron loads. */
export function rendererDir(): string {
  return path.join(appRoot(), 'out', 'renderer')
}

/** The bundled TinyStories texts: eval (perplexity) and calibration. */
export function bundledText(which: 'eval' | 'calib'): string | null {
  const p = path.join(appRoot(), 'resources', 'text', `tinystories_${which}.txt`)
  return existsSync(p) ? p : null
}

/** The folder of the bundled texts (read-only resources the renderer may name as eval/calibration text). */
export function bundledTextDir(): string {
  return path.join(appRoot(), 'resources', 'text')
}

/** Where exports go unless the user picks elsewhere: $WHITTLE_EXPORT_DIR, else ~/whittle-exports. */
export function defaultExportDir(): string {
  return path.resolve(process.env.WHITTLE_EXPORT_DIR || path.join(os.homedir(), 'whittle-exports'))
}
