// Finding and instantiating the kernel build. (The pool worker that runs it is tested in
// src-main/engine/pool/pool-worker.test.ts.)

import { beforeAll, describe, expect, it } from 'vitest'
import path from 'node:path'
import { existsSync } from 'node:fs'
import {
  compileKernels,
  createKernelMemory,
  instantiateKernels,
  locateKernelBuild,
  locatePoolWorker,
} from '../host/load'

let memory: WebAssembly.Memory

beforeAll(() => {
  memory = createKernelMemory(64, 16384)
})

describe('kernel build location', () => {
  it('finds kernels/build with the wasm and the bundled worker', () => {
    const dir = locateKernelBuild()
    expect(path.basename(dir)).toBe('build')
    expect(existsSync(path.join(dir, 'kernels.wasm'))).toBe(true)
    expect(locatePoolWorker()).toBe(path.join(dir, 'pool-worker.mjs'))
  })

  it('the module imports exactly the shared memory, which the host provides', async () => {
    const imports = WebAssembly.Module.imports(await compileKernels())
    expect(
      imports.every((i) => (i.module === 'env' && i.name === 'memory') || (i.module === 'env' && i.name === 'abort')),
    ).toBe(true)
    expect(imports.some((i) => i.kind === 'memory')).toBe(true)
  })

  it('refuses a module with imports it cannot satisfy', () => {
    // (module (import "env" "mystery" (func))) in binary form.
    const bytes = Uint8Array.from([
      0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 2, 0x0f, 1, 3, 0x65, 0x6e, 0x76, 7, 0x6d, 0x79, 0x73, 0x74,
      0x65, 0x72, 0x79, 0, 0,
    ])
    expect(() => instantiateKernels(new WebAssembly.Module(bytes), memory)).toThrow(/env\.mystery/)
  })
})
