// Whether bin.mjs may run the CLI bundle (out/cli, build-cli.mjs) instead of the TypeScript sources.
// Plain JavaScript: bin.mjs reads it before anything can compile TypeScript.
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The checkout this file belongs to. */
export const CLI_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Where build-cli.mjs writes the bundle under a checkout's root. */
export function cliBundleDir(root = CLI_ROOT) {
  return path.join(root, 'out', 'cli')
}

/**
 * Null when the bundle under `root` is built and none of the source files it was built from (its
 * inputs.json) changed since, else why it cannot be used. One stat per source file: about a millisecond.
 */
export function cliBundleProblem(root = CLI_ROOT) {
  let manifest
  try {
    manifest = JSON.parse(readFileSync(path.join(cliBundleDir(root), 'inputs.json'), 'utf8'))
  } catch {
    return 'out/cli is not built (npm run build:cli)'
  }
  if (!Array.isArray(manifest.inputs) || typeof manifest.builtAt !== 'number') return 'out/cli/inputs.json is malformed'
  for (const file of manifest.inputs) {
    let mtime
    try {
      mtime = statSync(path.join(root, file)).mtimeMs
    } catch {
      return `${file}, which it was built from, is gone`
    }
    if (mtime > manifest.builtAt) return `${file} changed after it was built`
  }
  return null
}
