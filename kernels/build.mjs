// Builds what the engine loads at run time into kernels/build/:
//   kernels.wasm     the AssemblyScript kernels, SIMD, importing one shared memory;
//   kernels-relaxed.wasm  the same source with relaxed SIMD enabled (matmul's multiply-adds fused where the
//                    CPU has FMA); loaded only on request and where the runtime supports it (kernels/host/load.ts);
//   pool-worker.mjs  the worker_threads host that instantiates them (bundled from src-main/engine/pool/pool-worker.ts).
import { spawnSync } from 'node:child_process'
import { mkdirSync, existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const out = path.join(here, 'build')
mkdirSync(out, { recursive: true })

const asc = path.join(here, '..', 'node_modules', 'assemblyscript', 'bin', 'asc.js')
if (!existsSync(asc)) {
  console.error('kernels: assemblyscript is not installed; run npm install first')
  process.exit(1)
}
const flags = [
  path.join(here, 'assembly', 'index.ts'),
  '--outFile',
  path.join(out, 'kernels.wasm'),
  '--textFile',
  path.join(out, 'kernels.wat'),
  '-O3',
  '--runtime',
  'stub',
  '--noAssert',
  '--enable',
  'simd',
  '--enable',
  'threads',
  '--importMemory',
  '--sharedMemory',
  // 1 GiB ceiling: chunks stream through fixed slots, so the kernels never need the whole model.
  '--initialMemory',
  '64',
  '--maximumMemory',
  '16384',
  '--use',
  'abort=',
]
const r = spawnSync(process.execPath, [asc, ...flags], { stdio: 'inherit' })
if (r.status !== 0) process.exit(r.status ?? 1)
const relaxedFlags = flags.slice()
relaxedFlags.splice(flags.indexOf('--outFile'), 4, '--outFile', path.join(out, 'kernels-relaxed.wasm'))
const relaxed = spawnSync(process.execPath, [asc, ...relaxedFlags, '--enable', 'relaxed-simd'], { stdio: 'inherit' })
if (relaxed.status !== 0) process.exit(relaxed.status ?? 1)

const esbuild = await import('esbuild')
await esbuild.build({
  entryPoints: [path.join(here, '..', 'src-main', 'engine', 'pool', 'pool-worker.ts')],
  outfile: path.join(out, 'pool-worker.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
})
// The engine's parser worker (src-main/engine/formats/parse-worker.ts) for bundled builds; runs from source
// (tests, CLI) load the TypeScript directly. It lives here because bundles find kernels/build at run time.
await esbuild.build({
  entryPoints: [path.join(here, '..', 'src-main', 'engine', 'formats', 'parse-worker.ts')],
  outfile: path.join(out, 'parse-worker.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
})
console.log('kernels: built kernels/build/kernels.wasm, kernels-relaxed.wasm, pool-worker.mjs and parse-worker.mjs')
