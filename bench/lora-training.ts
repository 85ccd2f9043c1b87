// LoRA training on a synthetic Llama (BF16, random weights) through the lora recipe step, for the two
// bench cases that compare how the frozen base is held: as BF16 halves (LoRA on the 16-bit base) and
// packed as NF4 with double-quantized constants (QLoRA, the dense base quantized on the way in). Each
// case runs in its own process, so its peak RSS is its own. r 16 on all Linears, seqlen 256, micro-batch
// 1. BENCH_TRAIN_PRESET (default tinyllama-1.1b) and BENCH_TRAIN_STEPS (default 2) make a quick smoke
// run possible, e.g. BENCH_TRAIN_PRESET=tiny-llama-test.

import { parseLoraParams, runLora } from '../src-main/engine/compress/methods/lora'
import { PythonRandom } from '../src-main/engine/calibration/python-random'
import { loadModel } from '../src-main/engine/model/loaded-model'
import { withReplacements } from '../src-main/engine/model/model-view'
import { WorkerPool } from '../src-main/engine/pool/worker-pool'
import { isPresetName, PRESETS } from '../src-main/engine/synthetic/presets'
import { syntheticModel } from './models'
import { emit, peakRss } from './rows'

const SEQLEN = 256

export async function benchLoraTraining(base: 'dense' | 'nf4'): Promise<void> {
  const preset = process.env.BENCH_TRAIN_PRESET ?? 'tinyllama-1.1b'
  if (!isPresetName(preset)) throw new Error(`BENCH_TRAIN_PRESET: unknown preset ${preset}`)
  const steps = Number(process.env.BENCH_TRAIN_STEPS ?? 2)
  const model = await loadModel(await syntheticModel(preset, 'BF16'))
  const pool = await WorkerPool.create({ threads: 2 })
  const rng = new PythonRandom(0)
  const vocab = PRESETS[preset].vocabSize
  const windows = Array.from({ length: steps }, () =>
    Int32Array.from({ length: SEQLEN }, () => rng.randint(1, vocab - 1)),
  )
  try {
    const r = await runLora({
      view: withReplacements(model),
      pool,
      windows,
      params: parseLoraParams(
        { r: 16, alpha: 32, steps, batch_size: 1, seqlen: SEQLEN, order: 'sequential', base },
        'bench lora',
      ),
    })
    // The first step includes warming up (worker start, first unpacking); the rate is over the rest.
    const rest = r.training.steps.slice(1)
    const seconds = rest.length ? rest[rest.length - 1].seconds - r.training.steps[0].seconds : r.training.seconds
    const tokens = rest.length ? rest.length * SEQLEN : r.training.tokens
    emit({
      case: `LoRA r 16 training, ${preset} shape (BF16), all Linears, seqlen 256, micro-batch 1`,
      variant: base === 'nf4' ? 'QLoRA: base packed NF4 b64 + double-quantized constants' : 'LoRA: base held as BF16',
      measure: 'tokens/s',
      value: `${(tokens / seconds).toFixed(1)} tok/s`,
      ratio: `${steps} steps; frozen base ${(r.packedBaseBytes / 2 ** 20).toFixed(1)} MiB (${r.heldAs}), kernel peak ${(r.peakKernelBytes / 2 ** 20).toFixed(1)} MiB`,
      peakRss: peakRss(),
    })
  } finally {
    await pool.close()
  }
}
