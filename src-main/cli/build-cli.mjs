// `npm run build:cli` (part of `npm run build`): the CLI as one ESM bundle in out/cli/, so `whittle` starts
// without tsx compiling some 300 TypeScript files on every run. bin.mjs runs it only while it is fresh
// (see there); without it, or with a stale one, bin.mjs runs the sources through tsx as before.
//
// out/cli/main.mjs     main.ts and its few static imports (all `whittle --help` loads)
// out/cli/chunks/*.mjs one chunk per command (imported only when it runs) and chunks of the code they share
// out/cli/inputs.json  the source files the bundle was built from, for bin.mjs's freshness check
//
// npm packages stay external (resolved from node_modules at run time, as in the Electron main bundle). The
// worker_threads entries (pool-worker.mjs, parse-worker.mjs) are bundled by kernels/build.mjs beside the
// kernels, and the engine finds them and the .wasm files by walking up from its own file, as it does in out/main.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const out = path.join(root, 'out', 'cli')
const started = Date.now()

const esbuild = await import('esbuild')
rmSync(out, { recursive: true, force: true })
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { main: path.join(root, 'src-main', 'cli', 'main.ts') },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  metafile: true,
  logLevel: 'warning',
})
// The worker entries the bundled engine starts (kernels/build.mjs bundles them) are listed too: editing
// one makes bin.mjs fall back to the sources, whose engine starts the workers from source as well.
const workerEntries = ['src-main/engine/pool/pool-worker.ts', 'src-main/engine/formats/parse-worker.ts']
const inputs = [...new Set([...Object.keys(result.metafile.inputs).map((f) => path.normalize(f)), ...workerEntries])]
mkdirSync(out, { recursive: true })
// `builtAt` is taken before esbuild read the sources: a file saved during the build counts as newer.
writeFileSync(path.join(out, 'inputs.json'), JSON.stringify({ builtAt: started, inputs }, null, 1) + '\n')
console.log(`cli: built out/cli/main.mjs from ${inputs.length} source files`)
