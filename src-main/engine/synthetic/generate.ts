// Writes a random-weight Llama in Hugging Face layout: config.json, generation_config.json and
// model.safetensors (or shards plus model.safetensors.index.json). Tensors are streamed in row chunks, so
// a 7B model is written without ever holding more than one chunk. A stamp file records what the folder
// holds; it is marked complete last, so an interrupted run is regenerated, and a complete one of the same
// preset, dtype, seed and options is kept as it is.

import { mkdir, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { WhittleError } from '../errors'
import { writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors-writer'
import { ioError } from '../io/ranged-file'
import { PRESETS, isPresetName, type LlamaPreset, type PresetName } from './presets'
import {
  DEFAULT_OUTLIERS,
  planLlamaTensors,
  tensorBytes,
  tensorChunks,
  type OutlierOptions,
  type PlannedTensor,
  type SyntheticDType,
} from './weights'

export type { SyntheticDType, OutlierOptions } from './weights'

export interface GenerateOptions {
  dtype: SyntheticDType
  /** Any integer; the same seed gives the same bytes. */
  seed: number
  /** Split into shards of at most about this many bytes (a larger single tensor gets a shard of its own). */
  shardBytes?: number
  onProgress?: (fraction: number, message: string) => void
  outliers?: Partial<OutlierOptions>
  /** Regenerate even when the folder already holds this exact model. */
  force?: boolean
}

export interface GeneratedModel {
  dir: string
  /** Every file written, relative to dir. */
  files: string[]
  /** Bytes of tensor data. */
  tensorBytes: number
  /** True when a complete identical model was already there and nothing was written. */
  skipped: boolean
}

export const STAMP_FILE = '.whittle-synthetic.json'
/** Bump when the values a given seed produces change, so stale folders are regenerated. */
export const GENERATOR_VERSION = 1

interface Stamp {
  generator: number
  preset: string
  dtype: SyntheticDType
  seed: number
  outliers: OutlierOptions
  shardBytes: number | null
  complete: boolean
  files: { name: string; size: number }[]
}

/** Files this generator writes, and so may delete when regenerating. */
const OWN_FILE =
  /^(?:model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json|config\.json|generation_config\.json)$/

const TORCH_DTYPES: Record<SyntheticDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }

function validate(
  dir: string,
  preset: string,
  options: GenerateOptions,
): { outliers: OutlierOptions; shardBytes: number | null } {
  const bad = (problem: string): WhittleError => new WhittleError('validation', dir, problem)
  if (!isPresetName(preset)) throw bad(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`)
  if (!['F32', 'BF16', 'F16'].includes(options.dtype))
    throw bad(`dtype must be F32, BF16 or F16, not ${String(options.dtype)}`)
  if (!Number.isSafeInteger(options.seed)) throw bad(`seed must be an integer, not ${options.seed}`)
  const outliers = { ...DEFAULT_OUTLIERS, ...options.outliers }
  if (
    !Number.isInteger(outliers.channelsPerLayer) ||
    outliers.channelsPerLayer < 0 ||
    outliers.channelsPerLayer > PRESETS[preset].hiddenSize
  ) {
    throw bad(
      `outlier channels per layer must be an integer from 0 to the hidden size, not ${outliers.channelsPerLayer}`,
    )
  }
  if (!Number.isFinite(outliers.scale) || outliers.scale <= 0)
    throw bad(`outlier scale must be a positive number, not ${outliers.scale}`)
  const shardBytes = options.shardBytes ?? null
  if (shardBytes !== null && (!Number.isSafeInteger(shardBytes) || shardBytes <= 0))
    throw bad(`shard size must be a positive number of bytes, not ${shardBytes}`)
  return { outliers, shardBytes }
}

export function llamaConfigJson(p: LlamaPreset, dtype: SyntheticDType): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: p.hiddenSize / p.heads,
    hidden_act: 'silu',
    hidden_size: p.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: p.intermediateSize,
    max_position_embeddings: p.maxPositions,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: p.heads,
    num_hidden_layers: p.layers,
    num_key_value_heads: p.kvHeads,
    pretraining_tp: 1,
    rms_norm_eps: p.rmsNormEps,
    rope_scaling: null,
    rope_theta: p.ropeTheta,
    tie_word_embeddings: p.tiedEmbeddings,
    torch_dtype: TORCH_DTYPES[dtype],
    use_cache: true,
    vocab_size: p.vocabSize,
  }
}

/** Greedy split at tensor boundaries. */
export function splitIntoShards(
  plan: PlannedTensor[],
  dtype: SyntheticDType,
  shardBytes: number | null,
): PlannedTensor[][] {
  if (shardBytes === null) return [plan]
  const shards: PlannedTensor[][] = []
  let current: PlannedTensor[] = []
  let size = 0
  for (const t of plan) {
    const bytes = tensorBytes(t, dtype)
    if (current.length && size + bytes > shardBytes) {
      shards.push(current)
      current = []
      size = 0
    }
    current.push(t)
    size += bytes
  }
  if (current.length) shards.push(current)
  return shards
}

function shardName(i: number, count: number): string {
  return count === 1
    ? 'model.safetensors'
    : `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`
}

async function readStamp(dir: string): Promise<Stamp | null | 'unreadable'> {
  let text: string
  try {
    text = await readFile(join(dir, STAMP_FILE), 'utf8')
  } catch {
    return null
  }
  try {
    return JSON.parse(text) as Stamp
  } catch {
    return 'unreadable'
  }
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size
  } catch {
    return null
  }
}

async function isComplete(dir: string, stamp: Stamp, wanted: Omit<Stamp, 'complete' | 'files'>): Promise<boolean> {
  if (!stamp.complete || !Array.isArray(stamp.files) || !stamp.files.length) return false
  if (
    JSON.stringify({ ...wanted }) !==
    JSON.stringify({
      generator: stamp.generator,
      preset: stamp.preset,
      dtype: stamp.dtype,
      seed: stamp.seed,
      outliers: { channelsPerLayer: stamp.outliers?.channelsPerLayer, scale: stamp.outliers?.scale },
      shardBytes: stamp.shardBytes,
    })
  )
    return false
  for (const f of stamp.files) {
    if ((await fileSize(join(dir, f.name))) !== f.size) return false
  }
  return true
}

async function writeJson(path: string, value: unknown): Promise<void> {
  try {
    await writeFile(path, `${JSON.stringify(value, null, 2)}\n`)
  } catch (e) {
    throw ioError(path, e, 'write')
  }
}

export async function generateLlamaModel(
  dir: string,
  preset: PresetName,
  options: GenerateOptions,
): Promise<GeneratedModel> {
  const root = resolve(dir)
  const { outliers, shardBytes } = validate(root, preset, options)
  const p: LlamaPreset = PRESETS[preset]
  const wanted = {
    generator: GENERATOR_VERSION,
    preset,
    dtype: options.dtype,
    seed: options.seed,
    outliers,
    shardBytes,
  }
  try {
    await mkdir(root, { recursive: true })
  } catch (e) {
    throw ioError(root, e, 'create folder')
  }

  const stamp = await readStamp(root)
  if (stamp && stamp !== 'unreadable' && !options.force && (await isComplete(root, stamp, wanted))) {
    const plan = planLlamaTensors(p, options.seed, outliers)
    return {
      dir: root,
      files: stamp.files.map((f) => f.name),
      tensorBytes: plan.reduce((a, t) => a + tensorBytes(t, options.dtype), 0),
      skipped: true,
    }
  }
  let present: string[]
  try {
    present = await readdir(root)
  } catch (e) {
    throw ioError(root, e, 'list folder')
  }
  // Never clear out a folder this generator did not make: it might hold someone's real model.
  if (!stamp && present.length) {
    throw new WhittleError(
      'validation',
      root,
      'is not empty and holds no synthetic model; choose a new or empty folder',
    )
  }
  await writeJson(join(root, STAMP_FILE), { ...wanted, complete: false, files: [] } satisfies Stamp)
  for (const name of present) {
    if (!OWN_FILE.test(name)) continue
    try {
      await unlink(join(root, name))
    } catch (e) {
      throw ioError(join(root, name), e, 'delete')
    }
  }

  await writeJson(join(root, 'config.json'), llamaConfigJson(p, options.dtype))
  await writeJson(join(root, 'generation_config.json'), { bos_token_id: 1, eos_token_id: 2 })
  const files = ['config.json', 'generation_config.json']

  const plan = planLlamaTensors(p, options.seed, outliers)
  const total = plan.reduce((a, t) => a + tensorBytes(t, options.dtype), 0)
  const shards = splitIntoShards(plan, options.dtype, shardBytes)
  const metadata = {
    format: 'pt',
    whittle_synthetic: JSON.stringify({ preset, dtype: options.dtype, seed: options.seed, outliers }),
  }
  const weightMap: Record<string, string> = {}
  let done = 0
  for (const [i, shard] of shards.entries()) {
    const name = shardName(i, shards.length)
    const inputs: SafetensorsTensorInput[] = shard.map((t) => ({
      name: t.name,
      dtype: options.dtype,
      shape: t.shape,
      data: function* (): Generator<Uint8Array> {
        for (const chunk of tensorChunks(t, options.seed, options.dtype)) {
          done += chunk.length
          options.onProgress?.(total ? done / total : 1, `${name}: ${t.name}`)
          yield chunk
        }
      },
    }))
    await writeSafetensors(join(root, name), inputs, metadata)
    for (const t of shard) weightMap[t.name] = name
    files.push(name)
  }
  if (shards.length > 1) {
    await writeJson(join(root, 'model.safetensors.index.json'), {
      metadata: { total_size: total },
      weight_map: weightMap,
    })
    files.push('model.safetensors.index.json')
  }

  const sizes: Stamp['files'] = []
  for (const name of files) sizes.push({ name, size: (await fileSize(join(root, name))) ?? -1 })
  await writeJson(join(root, STAMP_FILE), { ...wanted, complete: true, files: sizes } satisfies Stamp)
  return { dir: root, files, tensorBytes: total, skipped: false }
}
