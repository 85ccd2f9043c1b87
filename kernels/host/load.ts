// Finding, compiling and instantiating the kernel build (kernels/build/, made by `npm run build:kernels`).
// Plain Node: used by the engine's worker pool on the main thread and bundled into the pool worker.

import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { setFlagsFromString } from 'node:v8'
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

/**
 * Which build of the kernels: 'exact' (kernels.wasm: plain SIMD, bit-exact with the TS twins everywhere) or
 * 'fused' (kernels-relaxed.wasm: relaxed SIMD, matmul's multiply-adds fused on FMA hardware; faster, and
 * within a stated tolerance of the twins rather than bit-exact).
 */
export const KERNEL_VARIANTS = ['exact', 'fused'] as const
export type KernelVariant = (typeof KERNEL_VARIANTS)[number]

const VARIANT_FILES: Record<KernelVariant, string> = { exact: 'kernels.wasm', fused: 'kernels-relaxed.wasm' }

const compiled = new Map<KernelVariant, Promise<WebAssembly.Module>>()

/**
 * Whether this runtime compiles relaxed SIMD. Node 20 (V8 11.3) has it behind a flag, set here before the
 * first compile (V8 flags are per process, so workers given the compiled Module run it too); newer V8 has
 * it on by default and ignores the flag. Validates a one-function module that uses f32x4.relaxed_madd.
 */
export function relaxedSimdSupported(): boolean {
  relaxedSimd ??= probeRelaxedSimd()
  return relaxedSimd
}

/** Asked once per process: the flag and the probe module do not change while it runs. */
let relaxedSimd: boolean | null = null

function probeRelaxedSimd(): boolean {
  // A V8 that no longer knows the flag ignores it; the validation below decides either way.
  setFlagsFromString('--experimental-wasm-relaxed-simd')
  // (module (func (result v128) v128.const 0 v128.const 0 v128.const 0 f32x4.relaxed_madd))
  const v128Zero = [0xfd, 0x0c, ...new Array<number>(16).fill(0)]
  const body = [0x00, ...v128Zero, ...v128Zero, ...v128Zero, 0xfd, 0x85, 0x02, 0x0b]
  const bytes = new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b], // type: () -> v128
    ...[0x03, 0x02, 0x01, 0x00], // one function of type 0
    ...[0x0a, body.length + 2, 0x01, body.length, ...body],
  ])
  return WebAssembly.validate(bytes)
}

/**
 * Compiles the kernel build once per process and variant; the Module can be posted to workers. 'fused'
 * falls back to 'exact' where the runtime lacks relaxed SIMD or the relaxed build is missing: check
 * `kernelVariantOf` for what was compiled.
 */
export function compileKernels(variant: KernelVariant = 'exact'): Promise<WebAssembly.Module> {
  const wanted = variant === 'fused' && !relaxedSimdSupported() ? 'exact' : variant
  let pending = compiled.get(wanted)
  if (!pending) {
    pending = (async () => {
      const file = path.join(locateKernelBuild(), VARIANT_FILES[wanted])
      if (wanted === 'fused' && !existsSync(file)) return compileKernels('exact')
      try {
        const module = await WebAssembly.compile(readFileSync(file))
        variants.set(module, wanted)
        return module
      } catch (e) {
        throw new Error(`kernels: cannot compile ${file} (${(e as Error).message}); ${BUILD_HINT}`)
      }
    })()
    compiled.set(wanted, pending)
    // A failed attempt (e.g. not built yet) may be retried.
    pending.catch(() => compiled.delete(wanted))
  }
  return pending
}

const variants = new WeakMap<WebAssembly.Module, KernelVariant>()

/** The variant a Module from compileKernels was built as. */
export function kernelVariantOf(module: WebAssembly.Module): KernelVariant {
  return variants.get(module) ?? 'exact'
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
