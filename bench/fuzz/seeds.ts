// The seed checkpoints the fuzzer mutates: the real demo model (HF folder), the stories260K GGUF from
// ../shared when present, a sharded copy of the demo (index + 2 shards), and GPTQ and compressed-tensors
// checkpoints written by Whittle's own exporters from an RTN w4 g32 quantization of the demo model.

import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { rtnQuantize } from '../../src-main/engine/compress/methods/rtn'
import { isBlockLinear } from '../../src-main/engine/compress/recipe/targets'
import type { UniformGridRecord } from '../../src-main/engine/compress/quant/record'
import { exportCompressedTensors } from '../../src-main/engine/export/compressed-tensors-export'
import { exportGptq } from '../../src-main/engine/export/gptq-export'
import { readTensorBytes, readTensorF32 } from '../../src-main/engine/formats/read'
import { encodeSafetensorsHeader } from '../../src-main/engine/formats/safetensors-writer'
import { closeAllFiles } from '../../src-main/engine/io/ranged-file'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { withReplacements } from '../../src-main/engine/model/model-view'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const DEMO = path.join(repo, 'resources/demo/stories260K')
export const SHARED_GGUF = path.resolve(repo, '../shared/models/stories260K-gguf/stories260K.gguf')

export interface Seeds {
  /** Folder name under the seeds root → what it holds. */
  hf: string
  index: string
  gguf: string | null
  gptq: string
  ct: string
  notes: string[]
}

function copyFolder(from: string, to: string, skip: (name: string) => boolean = () => false): void {
  mkdirSync(to, { recursive: true })
  for (const n of readdirSync(from)) if (!skip(n)) copyFileSync(path.join(from, n), path.join(to, n))
}

async function buildShards(dir: string): Promise<void> {
  copyFolder(DEMO, dir, (n) => n.endsWith('.safetensors'))
  const model = await loadModel(DEMO)
  const entries = model.files.tensors
  const half = Math.ceil(entries.length / 2)
  const weightMap: Record<string, string> = {}
  let total = 0
  for (const [i, part] of [entries.slice(0, half), entries.slice(half)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`
    const header = encodeSafetensorsHeader(
      part.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, bytes: e.byteLength })),
    )
    const datas = await Promise.all(part.map((e) => readTensorBytes(e, 0, e.byteLength)))
    const out = new Uint8Array(header.length + datas.reduce((a, d) => a + d.length, 0))
    out.set(header)
    let at = header.length
    for (const d of datas) {
      out.set(d, at)
      at += d.length
    }
    writeFileSync(path.join(dir, file), out)
    for (const e of part) weightMap[e.name] = file
    total += datas.reduce((a, d) => a + d.length, 0)
  }
  writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  )
  closeAllFiles()
}

async function buildPacked(gptqDir: string, ctDir: string): Promise<void> {
  const view = withReplacements(await loadModel(DEMO))
  const records = new Map<string, UniformGridRecord>()
  for (const t of view.tensors.filter(isBlockLinear)) {
    const [rows, cols] = t.shape
    const W = await readTensorF32(view.entry(t.name))
    records.set(t.name, rtnQuantize(W, rows, cols, { bits: 4, groupSize: 32, sym: false, scaleDtype: 'f16' }))
    view.replace(t.name, W)
  }
  await exportGptq(view, records, gptqDir, { format: 'gptq' })
  await exportCompressedTensors(view, records, ctDir)
  closeAllFiles()
}

/** Builds every seed under `root` (which must not exist yet). */
export async function buildSeeds(root: string): Promise<Seeds> {
  mkdirSync(root, { recursive: true })
  const notes: string[] = []
  const seeds: Seeds = {
    hf: path.join(root, 'hf'),
    index: path.join(root, 'index'),
    gguf: null,
    gptq: path.join(root, 'gptq'),
    ct: path.join(root, 'compressed-tensors'),
    notes,
  }
  copyFolder(DEMO, seeds.hf)
  await buildShards(seeds.index)
  await buildPacked(seeds.gptq, seeds.ct)
  if (existsSync(SHARED_GGUF)) {
    seeds.gguf = path.join(root, 'gguf')
    mkdirSync(seeds.gguf)
    copyFileSync(SHARED_GGUF, path.join(seeds.gguf, 'stories260K.gguf'))
  } else {
    notes.push(`../shared is absent: no GGUF seed (${SHARED_GGUF}); the gguf format is skipped`)
  }
  return seeds
}
