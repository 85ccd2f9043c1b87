// Finding, compiling and instantiating the kernel build (kernels/build/, made by `npm run build:kernels`).
// Plain Node: used by the engine's worker pool on the main thread and bundled into the pool worker.

import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { KERNEL_NAMES, type KernelExports } from './exports'

const BUILD_HINT = 'run npm run build:kernels'

let buildDir: string | null = null

/**
 * The absolute path of the kernels/build folder holding kernels.wasm, found by walking up from this
 * file's folder (which works from the source tree and from bundles placed anywhere under the repository).
 */
export function locateKernelBuild(): string {
  if (buildDir) return buildDir
  const start = path.dirname(fileURLToPath(import.meta.url))
  for (let dir = start; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'kernels', 'build')
    if (existsSync(path.join(candidate, 'kernels.wasm'))) return (buildDir = candidate)
    // From inside kernels/ itself (e.g. kernels/host), the build folder is a sibling.
    if (path.basename(dir) === 'kernels' && existsSync(path.join(dir, 'build', 'kernels.wasm'))) {
      return (buildDir = path.join(dir, 'build'))
    }
    if (path.dirname(dir) === dir) break
  }
  throw new Error(`kernels: no kernels/build/kernels.wasm found above ${start}; ${BUILD_HINT}`)
}

/** The absolute path of the bundled worker_threads entry. */
export function locatePoolWorker(): string {
  const file = path.join(locateKernelBuild(), 'pool-worker.mjs')
  if (!existsSync(file)) throw new Error(`kernels: ${file} is missing; ${BUILD_HINT}`)
  return file
}

/** The memory every instance shares. Shared, so workers can be handed the same one. */
export function createKernelMemory(initialPages = 64, maximumPages = 16384): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: initialPages, maximum: maximumPages, shared: true })
}

let compiled: Promise<WebAssembly.Module> | null = null

/** Compiles kernels.wasm once per process; the Module can be posted to workers. */
export function compileKernels(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const file = path.join(locateKernelBuild(), 'kernels.wasm')
    try {
      return await WebAssembly.compile(readFileSync(file))
    } catch (e) {
      throw new Error(`kernels: cannot compile ${file} (${(e as Error).message}); ${BUILD_HINT}`)
    }
  })()
  compiled.catch(() => {
    compiled = null
  }) // a failed attempt (e.g. not built yet) may be retried
  return compiled
}

/**
 * Instantiates the kernels over `memory`, synchronously. The imports are exactly what the module asks
 * for: its memory, and `abort` if the build kept one (it turns a trap report into an exception).
 */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const env: Record<string, WebAssembly.ImportValue> = {}
  for (const imp of WebAssembly.Module.imports(module)) {
    const key = `${imp.module}.${imp.name}`
    if (key === 'env.memory' && imp.kind === 'memory') env.memory = memory
    else if (key === 'env.abort' && imp.kind === 'function') env.abort = abortImport
    else
      throw new Error(
        `kernels: the module imports ${key} (${imp.kind}), which the host does not provide; ${BUILD_HINT}`,
      )
  }
  const instance = new WebAssembly.Instance(module, { env })
  const exports = instance.exports as Record<string, unknown>
  const missing = ['heap_base', ...KERNEL_NAMES].filter((name) => typeof exports[name] !== 'function')
  if (missing.length > 0)
    throw new Error(`kernels: the build lacks ${missing.join(', ')}; it is out of date, ${BUILD_HINT}`)
  return exports as unknown as KernelExports
}

function abortImport(message: number, file: number, line: number, column: number): never {
  // Message and file are pointers to AssemblyScript strings; the position is what is cheap to report.
  throw new Error(`kernel abort at line ${line}:${column} (message@${message}, file@${file})`)
}
