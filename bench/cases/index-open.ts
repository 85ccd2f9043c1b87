// Opening the Llama-2-70B shape's sharded index (issue #15: under 1 s): config, index, every shard's
// header, the architecture and the summary, as the app's Open does. The shards are skeletons (real
// headers, sparse holes for the data; synthetic/skeleton.ts), so 138 GB of BF16 costs no disk.

import { existsSync } from 'node:fs'
import path from 'node:path'
import { loadModel } from '../../src-main/engine/model/loaded-model'
import { writeSkeletonModel } from '../../src-main/engine/synthetic/skeleton'
import { MODELS_DIR } from '../models'
import { bestOf, emit, peakRss } from '../rows'

const dir = path.join(MODELS_DIR, 'llama-70b-bf16-skeleton')
if (!existsSync(path.join(dir, 'model.safetensors.index.json'))) await writeSkeletonModel(dir, 'llama-70b', 'BF16')
let summary = (await loadModel(dir)).summary
const first = await bestOf(1, async () => {
  summary = (await loadModel(dir)).summary
})
const best = await bestOf(5, async () => {
  summary = (await loadModel(dir)).summary
})
emit({
  case: 'open a sharded index, Llama-2-70B shape, BF16',
  variant: `${summary.files.filter((f) => f.endsWith('.safetensors')).length} shards, ${summary.tensorCount} tensors`,
  measure: 'wall (best of 5 / first warm)',
  value: `${best.toFixed(3)} s / ${first.toFixed(3)} s`,
  ratio: `${(summary.parameterCount / 1e9).toFixed(1)} B params, ${(summary.sizeOnDisk / 1e9).toFixed(0)} GB; goal < 1 s`,
  peakRss: peakRss(),
})
