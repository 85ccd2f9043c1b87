// Quality against the reference: perplexity of stories260K (TinyStories eval, seqlen 256) for FP32 and
// each compression setting that ../shared/reference/reference.json has, next to the authors' number.
// Skipped (one row saying so) where ../shared is absent.

import { calibrationWindows } from '../../src-main/engine/calibration/windows'
import { runRecipe } from '../../src-main/engine/compress/pipeline'
import { validateRecipe } from '../../src-main/engine/compress/recipe/recipe'
import { perplexity } from '../../src-main/engine/eval/perplexity'
import { loadModel, type LoadedModel } from '../../src-main/engine/model/loaded-model'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import {
  hasShared,
  referenceCalibrationStarts,
  referenceIds,
  referenceRun,
  shared,
} from '../../src-main/engine/testing/shared-data'
import { emit } from '../rows'

const SETTINGS: { run: string; label: string; method?: string; params?: Record<string, unknown> }[] = [
  { run: 'fp32', label: 'FP32' },
  // The reference keeps f32 scales; Whittle's default fp16 scales (what GPTQ checkpoints store) in a second row.
  { run: 'rtn_w8', label: 'RTN w8 per-channel', method: 'rtn', params: { bits: 8, scale_dtype: 'f32' } },
  { run: 'rtn_w4', label: 'RTN w4 per-channel', method: 'rtn', params: { bits: 4, scale_dtype: 'f32' } },
  { run: 'rtn_w4_g32', label: 'RTN w4 g32', method: 'rtn', params: { bits: 4, group_size: 32, scale_dtype: 'f32' } },
  { run: 'gptq_w4', label: 'GPTQ w4 per-channel', method: 'gptq', params: { bits: 4, scale_dtype: 'f32' } },
  { run: 'gptq_w4', label: 'GPTQ w4 per-channel, fp16 scales', method: 'gptq', params: { bits: 4 } },
  { run: 'gptq_w3', label: 'GPTQ w3 per-channel', method: 'gptq', params: { bits: 3, scale_dtype: 'f32' } },
  { run: 'magnitude_50', label: 'Magnitude 50% per matrix', method: 'magnitude', params: { sparsity: 0.5 } },
  { run: 'wanda_50', label: 'Wanda 50%', method: 'wanda', params: { sparsity: 0.5 } },
  { run: 'sparsegpt_50', label: 'SparseGPT 50%', method: 'sparsegpt', params: { sparsity: 0.5 } },
  { run: 'smoothquant_w8a8_a0.5', label: 'SmoothQuant W8A8 α=0.5', method: 'smoothquant', params: { alpha: 0.5 } },
  // No reference numbers for these: compared with the nearest reference setting.
  { run: 'rtn_w4_g32', label: 'AWQ w4 g32 (vs RTN w4 g32)', method: 'awq', params: { bits: 4, group_size: 32 } },
  { run: 'fp32', label: 'LLM.int8 threshold 6 (vs FP32)', method: 'llm_int8', params: { threshold: 6 } },
  { run: 'rtn_w4', label: 'NF4 block 64 (vs RTN w4)', method: 'nf4', params: {} },
  { run: 'fp32', label: 'GGUF Q4_K (with fallbacks; vs FP32)', method: 'gguf', params: { type: 'Q4_K' } },
  { run: 'magnitude_50', label: 'Magnitude 2:4 (vs magnitude 50%)', method: 'magnitude', params: { pattern: '2:4' } },
  { run: 'wanda_50', label: 'Wanda 2:4 (vs Wanda 50%)', method: 'wanda', params: { pattern: '2:4' } },
  { run: 'sparsegpt_50', label: 'SparseGPT 2:4 (vs SparseGPT 50%)', method: 'sparsegpt', params: { pattern: '2:4' } },
  {
    run: 'sparsegpt_50',
    label: 'SparseGPT 50% + 4-bit joint (vs SparseGPT 50%)',
    method: 'sparsegpt',
    params: { sparsity: 0.5, bits: 4, group_size: 128 },
  },
]

if (!hasShared) {
  emit({ case: 'quality vs reference', variant: '-', measure: 'ppl', value: 'skipped: ../shared absent' })
} else {
  const pool = await WorkerPool.create({ threads: 2 })
  const model = await loadModel(shared('models/stories260K'))
  const windows = calibrationWindows(referenceIds('tinystories_calib'), {
    samples: 128,
    seqlen: 256,
    seed: 0,
    starts: referenceCalibrationStarts(),
  })
  const ids = referenceIds('tinystories_eval')
  for (const s of SETTINGS) {
    let m: LoadedModel = model
    let seconds = 0
    if (s.method) {
      const r = await runRecipe(pool, model, validateRecipe({ steps: [{ method: s.method, params: s.params }] }), {
        windows,
      })
      m = r.view
      seconds = r.seconds
    }
    const ppl = (await perplexity(pool, m, ids, { seqlen: 256 })).ppl
    const ref = referenceRun(s.run).ppl.tinystories_eval['256'].ppl
    emit({
      case: 'stories260K ppl, TinyStories eval, seqlen 256',
      variant: s.label,
      measure: 'ppl (reference)',
      value: `${ppl.toFixed(4)} (${ref.toFixed(4)})`,
      ratio: `${((ppl / ref - 1) * 100).toFixed(3)}%${s.method ? `, compress ${seconds.toFixed(1)} s` : ''}`,
    })
  }
  await pool.close()
}
