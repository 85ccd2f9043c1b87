// A Hugging Face model folder: config.json, optional generation_config.json and tokenizer files, and the
// weights as model.safetensors, a sharded model.safetensors.index.json, or a single .gguf.

import { readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { WhittleError } from '../errors'
import { ioError } from '../io/ranged-file'
import { openGgufFile } from './gguf'
import { MAX_CONFIG_JSON_BYTES } from './limits'
import { unpackQuantizedLinears } from './packed-linears'
import { openSafetensorsFile, openShardedSafetensors, readJsonFile, type SafetensorsModel } from './safetensors'
import type { ModelFiles } from './types'

export { loadTokenizer, type Tokenizer } from './tokenizer'

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Reads a JSON object file, or returns null when it does not exist. Invalid content is a 'config' error. */
export async function readOptionalConfig(path: string): Promise<Record<string, unknown> | null> {
  if (!(await isFile(path))) return null
  const json = await readJsonFile(path, MAX_CONFIG_JSON_BYTES, 'config')
  if (!isPlainObject(json)) throw new WhittleError('config', path, 'is not a JSON object')
  return json
}

/** The sidecar files of a model in `folder` (config, generation config, tokenizer). */
export async function readSidecars(
  folder: string,
): Promise<Pick<ModelFiles, 'config' | 'generationConfig' | 'tokenizerPath'>> {
  const config = await readOptionalConfig(join(folder, 'config.json'))
  const generationConfig = await readOptionalConfig(join(folder, 'generation_config.json'))
  const tokenizerFile = join(folder, 'tokenizer.json')
  return { config, generationConfig, tokenizerPath: (await isFile(tokenizerFile)) ? tokenizerFile : null }
}

/**
 * Opens a model folder. Weights are looked for in this order: model.safetensors,
 * model.safetensors.index.json, the only *.safetensors file, the only *.gguf file.
 * config.json is required for safetensors weights (they carry no architecture); a folder holding just a
 * GGUF may omit it, since GGUF metadata describes the model itself.
 */
export async function openHfFolder(folder: string): Promise<ModelFiles> {
  const abs = resolve(folder)
  let names: string[]
  try {
    names = (await readdir(abs)).sort()
  } catch (e) {
    throw ioError(abs, e, 'list folder')
  }
  const sidecars = await readSidecars(abs)
  const has = (n: string): boolean => names.includes(n)
  const safetensors = names.filter((n) => n.endsWith('.safetensors'))
  const ggufs = names.filter((n) => n.toLowerCase().endsWith('.gguf'))

  let weights: SafetensorsModel | null = null
  let format: ModelFiles['format'] = 'safetensors'
  if (has('model.safetensors')) weights = await openSafetensorsFile(join(abs, 'model.safetensors'))
  else if (has('model.safetensors.index.json'))
    weights = await openShardedSafetensors(join(abs, 'model.safetensors.index.json'))
  else if (safetensors.length === 1) weights = await openSafetensorsFile(join(abs, safetensors[0]))
  else if (safetensors.length > 1) {
    throw new WhittleError(
      'format',
      abs,
      `holds ${safetensors.length} .safetensors files but no model.safetensors.index.json to say how they fit together`,
    )
  } else if (ggufs.length === 1) {
    weights = await openGgufFile(join(abs, ggufs[0]))
    format = 'gguf'
  } else if (ggufs.length > 1) {
    throw new WhittleError(
      'format',
      abs,
      `holds ${ggufs.length} .gguf files (${ggufs.join(', ')}); open one of them directly`,
    )
  } else {
    throw new WhittleError(
      'not-found',
      abs,
      'no model weights found (expected model.safetensors, model.safetensors.index.json or a .gguf file)',
    )
  }
  if (format === 'safetensors' && !sidecars.config) {
    throw new WhittleError(
      'not-found',
      abs,
      'config.json is missing; a safetensors model folder needs it to describe the architecture',
    )
  }
  // GPTQ / compressed-tensors checkpoints: packed Linears open as the F32 weights a loader computes.
  return unpackQuantizedLinears({
    format,
    path: abs,
    files: weights.files,
    tensors: weights.tensors,
    metadata: weights.metadata,
    ...sidecars,
    sizeOnDisk: weights.sizeOnDisk,
    warnings: weights.warnings,
  })
}
