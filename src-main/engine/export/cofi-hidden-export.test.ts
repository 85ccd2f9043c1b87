// CoFi's narrower residual stream (compress/structure/remove-hidden.ts) through the real export (write,
// read-back check) and re-opened from disk: a plain Llama config with the smaller hidden_size, an explicit
// head_dim and the rescaled rms_norm_eps, and the same perplexity it was measured with.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { foldHiddenGates, removeHidden } from '../compress/structure/remove-hidden'
import { perplexity } from '../eval/perplexity'
import { readTextFile, tokenizeForEval } from '../eval/tokenize-text'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { seededRandom } from '../train/seeded-random'
import { exportModel } from './export-model'

const root = path.resolve(__dirname, '../../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-cofi-hidden-export-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('cofi hidden-dimension exports', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let evalIds: Int32Array
  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(root, 'resources/demo/stories260K'))
    evalIds = await tokenizeForEval(
      model.files,
      await readTextFile(path.join(root, 'resources/text/tinystories_eval.txt')),
    )
  })
  afterAll(() => pool?.close())

  it('a narrower stories260K re-opens from its safetensors export with the same perplexity', async () => {
    const H = model.arch.hiddenSize
    const random = seededRandom(8)
    // Gates as training leaves them: some dimensions at 0, the others in (0, 1].
    const z = Float32Array.from({ length: H }, (_, k) => (k % 5 === 2 ? 0 : 0.4 + 0.6 * random()))
    const folded = withReplacements(model)
    await foldHiddenGates(folded, z)
    const kept = Array.from({ length: H }, (_, k) => k).filter((k) => z[k] !== 0)
    const narrower = await removeHidden(folded, kept)
    const out = path.join(tmp, 'narrower')
    const written = await exportModel(pool, narrower, out, { format: 'safetensors' })
    expect(written.verified).toMatch(/re-read and equal/)
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'))
    expect(config.hidden_size).toBe(kept.length)
    expect(config.head_dim).toBe(model.arch.headDim)
    expect(config.num_attention_heads).toBe(model.arch.heads)
    expect(config.rms_norm_eps).toBeCloseTo(((model.arch.normEps ?? 1e-5) * H) / kept.length, 15)
    const reopened = await loadModel(out)
    expect(reopened.arch.warnings).toEqual([])
    expect(reopened.arch.hiddenSize).toBe(kept.length)
    expect(reopened.summary.parameterCount).toBe(narrower.summary.parameterCount)
    const ppl = async (m: LoadedModel): Promise<number> =>
      (await perplexity(pool, m, evalIds, { seqlen: 256, maxWindows: 8 })).ppl
    const measured = await ppl(narrower)
    expect(await ppl(reopened)).toBe(measured)
    // Gates on the output rows o and down were not folded here, so the model differs from the original.
    expect(measured).not.toBe(await ppl(model))
  })
})
