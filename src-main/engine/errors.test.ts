// The kernels' own argument error becomes the engine's typed 'validation' error where the two meet.

import { describe, expect, it } from 'vitest'
import { KernelArgumentError } from '../../kernels/reference/errors'
import { ropeTable } from '../../kernels/reference/rope'
import { fromKernelError, WhittleError } from './errors'

function thrownBy(run: () => unknown): unknown {
  try {
    run()
  } catch (e) {
    return e
  }
  throw new Error('expected a throw')
}

describe('fromKernelError', () => {
  it("turns a twin's KernelArgumentError into a WhittleError with code 'validation' and the same message", () => {
    const raw = thrownBy(() => ropeTable(4, 8, -1))
    expect(raw).toBeInstanceOf(KernelArgumentError)
    expect(raw).not.toBeInstanceOf(WhittleError)
    const e = fromKernelError(raw)
    expect(e).toBeInstanceOf(WhittleError)
    expect((e as WhittleError).code).toBe('validation')
    expect((e as WhittleError).file).toBeNull()
    expect((e as WhittleError).message).toBe((raw as Error).message)
    expect((e as WhittleError).message).toMatch(/^ropeTable: theta = -1/)
  })

  it('passes everything else through unchanged', () => {
    const w = new WhittleError('format', 'x.gguf', 'bad')
    const r = new RangeError('r')
    expect(fromKernelError(w)).toBe(w)
    expect(fromKernelError(r)).toBe(r)
    expect(fromKernelError('text')).toBe('text')
  })
})
