// One entry point for every model the user can point at: a .safetensors file, a sharded index, a .gguf
// file, or a model folder. Files are recognised by their first bytes, not their names, so a misnamed file
// still opens and a random file gets a clear error rather than a parser's confusion.

import { stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { WhittleError } from '../errors'
import { ioError, readFully, withFileHandle, closeFile, handleSize } from '../io/ranged-file'
import { looksLikeGguf, openGgufFile } from './gguf'
import { openHfFolder, readSidecars } from './hf-folder'
import { openSafetensorsFile, openShardedSafetensors } from './safetensors'
import type { ModelFiles } from './types'

export type DetectedKind = 'gguf' | 'safetensors' | 'index' | 'unknown'

/** Classifies a file by its first bytes (`size` is the whole file's). */
export function detectKind(first: Uint8Array, size: number): DetectedKind {
  if (looksLikeGguf(first)) return 'gguf'
  // safetensors: u64 header length that fits the file, then the JSON's opening brace.
  if (first.length >= 9 && first[8] === 0x7b) {
    const n = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true)
    if (n > 0n && n <= BigInt(size - 8)) return 'safetensors'
  }
  // A JSON index: optional BOM/whitespace, then '{'.
  let i = 0
  if (first[0] === 0xef && first[1] === 0xbb && first[2] === 0xbf) i = 3
  while (i < first.length && (first[i] === 0x20 || first[i] === 0x0a || first[i] === 0x0d || first[i] === 0x09)) i++
  if (i < first.length && first[i] === 0x7b) return 'index'
  return 'unknown'
}

async function sniff(path: string): Promise<DetectedKind> {
  const kind = await withFileHandle(path, async (h) => {
    const size = await handleSize(h, path)
    const first = new Uint8Array(Math.min(64, size))
    await readFully(h, path, 0, first)
    return detectKind(first, size)
  })
  closeFile(path)
  return kind
}

/** A tokenizer.json beside a lone GGUF file wins over the GGUF's own tokenizer.ggml.* (config.json is not read: GGUF metadata describes the model). */
async function tokenizerJsonBeside(file: string): Promise<string | null> {
  const candidate = join(dirname(file), 'tokenizer.json')
  return (await stat(candidate).catch(() => null))?.isFile() ? candidate : null
}

/**
 * Opens a model by path and returns its tensor index. Only headers are read. Every failure is a
 * WhittleError naming the file at fault.
 */
export async function openModelFiles(path: string): Promise<ModelFiles> {
  const abs = resolve(path)
  let info
  try {
    info = await stat(abs)
  } catch (e) {
    throw ioError(abs, e, 'stat')
  }
  if (info.isDirectory()) return openHfFolder(abs)
  if (!info.isFile()) throw new WhittleError('unsupported', abs, 'is neither a file nor a folder')

  const kind = await sniff(abs)
  // A .gguf that fails the magic check still goes to the GGUF reader, whose error says exactly that.
  if (kind === 'gguf' || (kind === 'unknown' && abs.toLowerCase().endsWith('.gguf'))) {
    const g = await openGgufFile(abs)
    return {
      format: 'gguf',
      path: abs,
      files: g.files,
      tensors: g.tensors,
      metadata: g.metadata,
      config: null,
      generationConfig: null,
      tokenizerPath: await tokenizerJsonBeside(abs),
      sizeOnDisk: g.sizeOnDisk,
      warnings: g.warnings,
    }
  }
  if (kind === 'safetensors' || kind === 'index' || (kind === 'unknown' && abs.endsWith('.safetensors'))) {
    // A lone file of a HF folder: pick up the config and tokenizer beside it, which describe it.
    const weights = kind === 'index' ? await openShardedSafetensors(abs) : await openSafetensorsFile(abs)
    const sidecars = await readSidecars(dirname(abs))
    return {
      format: 'safetensors',
      path: abs,
      files: weights.files,
      tensors: weights.tensors,
      metadata: weights.metadata,
      ...sidecars,
      sizeOnDisk: weights.sizeOnDisk,
      warnings: weights.warnings,
    }
  }
  throw new WhittleError('unsupported', abs, 'not a safetensors, GGUF or safetensors index file')
}
