// A model's files with real headers and no data: each safetensors shard is its header followed by a
// sparse hole of the right length (the filesystem stores no blocks for it, reads return zeros). It is
// how the 70B shape's sharded index is opened on a machine with 75 GB of disk: everything an open reads
// (config, index, shard headers, file sizes) is real; the weights are zeros and are never meant to run.

import { mkdir, open, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { WhittleError } from '../errors'
import { encodeSafetensorsHeader } from '../formats/safetensors-writer'
import { ioError } from '../io/ranged-file'
import { llamaConfigJson, splitIntoShards } from './generate'
import { PRESETS, type PresetName } from './presets'
import { DEFAULT_OUTLIERS, planLlamaTensors, tensorBytes, type SyntheticDType } from './weights'

/** HF's usual shard size for large checkpoints (about 10 GB). */
export const SKELETON_SHARD_BYTES = 10_000_000_000

export interface SkeletonModel {
  dir: string
  shards: number
  tensors: number
  /** Bytes the tensors would take (the files' apparent size, less headers). */
  tensorBytes: number
}

/** Writes config.json, the shards (header + hole) and model.safetensors.index.json into an empty or new `dir`. */
export async function writeSkeletonModel(
  dir: string,
  preset: PresetName,
  dtype: SyntheticDType,
  shardBytes = SKELETON_SHARD_BYTES,
): Promise<SkeletonModel> {
  const root = resolve(dir)
  try {
    await mkdir(root, { recursive: true })
  } catch (e) {
    throw ioError(root, e, 'create folder')
  }
  const plan = planLlamaTensors(PRESETS[preset], 1, DEFAULT_OUTLIERS)
  const shards = splitIntoShards(plan, dtype, shardBytes)
  const weightMap: Record<string, string> = {}
  let total = 0
  for (const [i, shard] of shards.entries()) {
    const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`
    const entries = shard.map((t) => ({ name: t.name, dtype, shape: t.shape, bytes: tensorBytes(t, dtype) }))
    const header = encodeSafetensorsHeader(entries, { format: 'pt' })
    const data = entries.reduce((a, e) => a + e.bytes, 0)
    const file = join(root, name)
    let handle
    try {
      handle = await open(file, 'wx')
      await handle.write(header, 0, header.length, 0)
      await handle.truncate(header.length + data)
    } catch (e) {
      throw ioError(file, e, 'write')
    } finally {
      await handle?.close()
    }
    for (const t of shard) weightMap[t.name] = name
    total += data
  }
  if (shards.length < 2)
    throw new WhittleError('validation', root, 'a skeleton is for sharded models: use a smaller shard size')
  await writeFile(join(root, 'config.json'), `${JSON.stringify(llamaConfigJson(PRESETS[preset], dtype), null, 2)}\n`)
  await writeFile(
    join(root, 'model.safetensors.index.json'),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  )
  return { dir: root, shards: shards.length, tensors: plan.length, tensorBytes: total }
}
