// An importance-matrix file of either format: the GGUF one is recognised by its magic, anything else is
// read as the legacy .dat (llama-quantize decides the same way, trying GGUF first).

import { open } from 'node:fs/promises'
import { WhittleError } from '../errors'
import { looksLikeGguf } from './gguf'
import { readImatrixDat, writeImatrixDat } from './imatrix-dat'
import { readImatrixGguf, writeImatrixGguf } from './imatrix-gguf'
import type { Imatrix } from './imatrix-data'

export type ImatrixFormat = 'gguf' | 'dat'
export const IMATRIX_FORMATS: readonly ImatrixFormat[] = ['gguf', 'dat']

async function firstBytes(file: string): Promise<Uint8Array> {
  let handle
  try {
    handle = await open(file, 'r')
  } catch {
    throw new WhittleError('not-found', file, 'cannot read the importance-matrix file')
  }
  try {
    const buf = new Uint8Array(4)
    const { bytesRead } = await handle.read(buf, 0, 4, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/** The format of an imatrix file, from its first bytes. */
export async function imatrixFormatOf(file: string): Promise<ImatrixFormat> {
  return looksLikeGguf(await firstBytes(file)) ? 'gguf' : 'dat'
}

export async function readImatrixFile(file: string): Promise<{ imatrix: Imatrix; format: ImatrixFormat }> {
  const format = await imatrixFormatOf(file)
  return { imatrix: format === 'gguf' ? await readImatrixGguf(file) : await readImatrixDat(file), format }
}

export async function writeImatrixFile(file: string, imatrix: Imatrix, format: ImatrixFormat): Promise<number> {
  return format === 'gguf' ? writeImatrixGguf(file, imatrix) : writeImatrixDat(file, imatrix)
}
