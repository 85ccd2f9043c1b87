// safetensors writer. The header is computed up front from the shapes, then each tensor's bytes are
// streamed in order, so a producer can generate a multi-GB tensor chunk by chunk without holding it.
// The JSON header is padded with spaces to a multiple of 8 bytes so the data buffer starts 8-aligned
// (as the reference writer does), which lets readers map typed arrays directly.

import { WhittleError } from '../errors'
import { writeFileAtomically, type AtomicWriteOptions } from '../io/atomic-writer'
import { SAFETENSORS_DTYPES, dtypeGeometry, safeMultiply, safeProduct } from './dtype-info'
import type { DType } from './types'

export type TensorBytes = Uint8Array | (() => Iterable<Uint8Array> | AsyncIterable<Uint8Array>)

export interface SafetensorsTensorInput {
  name: string
  dtype: DType
  shape: number[]
  /** The bytes, or a function returning chunks that together are exactly prod(shape)·sizeof(dtype) bytes. */
  data: TensorBytes
}

const ALLOWED = new Set<string>(SAFETENSORS_DTYPES)

function planBytes(path: string, t: SafetensorsTensorInput): number {
  if (!ALLOWED.has(t.dtype))
    throw new WhittleError('validation', path, `tensor "${t.name}": dtype ${t.dtype} cannot be stored in safetensors`)
  const numel = safeProduct(t.shape)
  const bytes = numel === null ? null : safeMultiply(numel, dtypeGeometry(t.dtype).blockBytes)
  if (bytes === null)
    throw new WhittleError('validation', path, `tensor "${t.name}": invalid shape ${JSON.stringify(t.shape)}`)
  if (t.data instanceof Uint8Array && t.data.length !== bytes) {
    throw new WhittleError(
      'validation',
      path,
      `tensor "${t.name}": ${t.data.length} data bytes, but shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${bytes}`,
    )
  }
  return bytes
}

/** The header bytes (JSON padded to 8) for tensors laid out in order. */
export function encodeSafetensorsHeader(
  entries: { name: string; dtype: DType; shape: number[]; bytes: number }[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {}
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata
  let offset = 0
  for (const e of entries) {
    // defineProperty, not assignment: a tensor named "__proto__" must be written as an entry like any other.
    const entry = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes] }
    Object.defineProperty(header, e.name, { value: entry, enumerable: true, writable: true, configurable: true })
    offset += e.bytes
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  const out = new Uint8Array(8 + padded)
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true)
  out.set(json, 8)
  out.fill(0x20, 8 + json.length)
  return out
}

/**
 * Writes a safetensors file atomically (temp file, flushed, optionally verified, then named). Tensors
 * are stored in the order given. Returns the file's size in bytes. `options.exclusive` never replaces an
 * existing file; see writeFileAtomically.
 */
export async function writeSafetensors(
  path: string,
  tensors: SafetensorsTensorInput[],
  metadata?: Record<string, string>,
  options?: AtomicWriteOptions,
): Promise<number> {
  const names = new Set<string>()
  for (const t of tensors) {
    if (t.name === '__metadata__' || names.has(t.name))
      throw new WhittleError('validation', path, `tensor name "${t.name}" is reserved or repeated`)
    names.add(t.name)
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw new WhittleError('validation', path, `metadata "${k}" must be a string`)
  }
  const planned = tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: planBytes(path, t) }))
  const header = encodeSafetensorsHeader(planned, metadata)
  return writeFileAtomically(
    path,
    async (w) => {
      await w.write(header)
      for (const [i, t] of tensors.entries()) {
        const expected = planned[i].bytes
        if (t.data instanceof Uint8Array) {
          await w.write(t.data)
          continue
        }
        let produced = 0
        for await (const chunk of t.data()) {
          produced += chunk.length
          if (produced > expected) break
          await w.write(chunk)
        }
        if (produced !== expected) {
          throw new WhittleError(
            'validation',
            path,
            `tensor "${t.name}": producer gave ${produced > expected ? 'more than' : 'only'} ${produced > expected ? expected : produced} bytes, but shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${expected}`,
          )
        }
      }
    },
    options,
  )
}
