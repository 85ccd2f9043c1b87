// The registry of compression methods: one file per method, all behind CompressionMethod.

import { WhittleError } from '../../errors'
import { gptq } from './gptq'
import type { CompressionMethod } from './method'
import { rtn } from './rtn'

const METHODS: Record<string, CompressionMethod<never>> = {
  rtn: rtn as CompressionMethod<never>,
  gptq: gptq as CompressionMethod<never>,
}

export function methodNames(): string[] {
  return Object.keys(METHODS)
}

export function getMethod(name: string, where: string): CompressionMethod<unknown> {
  const m = METHODS[name]
  if (!m) throw new WhittleError('validation', null, `recipe ${where}: unknown method "${name}" (known: ${methodNames().join(', ')})`)
  return m as CompressionMethod<unknown>
}
