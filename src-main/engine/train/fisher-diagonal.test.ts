// The Fisher diagonal against central finite differences of the loss, measured with the eval path
// (eval/perplexity.ts's forward pass, not the trainer's): for each of two windows, the gradient of its
// mean next-token loss with respect to a weight; the Fisher must be the mean of their squares (not the
// square of the mean gradient). On the bundled demo model (stories260K), random token windows.

import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { perplexity } from '../eval/perplexity'
import { readTensorF32 } from '../formats/read'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { withReplacements } from '../model/model-view'
import { WorkerPool } from '../pool/worker-pool'
import { repoRoot } from '../testing/shared-data'
import { fisherDiagonal } from './fisher-diagonal'
import { seededRandom } from './seeded-random'

const T = 32

describe('fisherDiagonal', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let windows: Int32Array[]
  let fisher: Map<string, Float32Array>

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(repoRoot, 'resources/demo/stories260K'))
    const rnd = seededRandom(11)
    windows = [0, 1].map(() => Int32Array.from({ length: T }, () => Math.floor(rnd() * 512)))
    fisher = await fisherDiagonal(pool, model, windows)
  })
  afterAll(() => pool?.close())

  /** d(mean NLL of window)/dw at one weight, by central differences through the eval forward pass. */
  async function finiteDifference(name: string, at: number, window: Int32Array): Promise<number> {
    const base = await readTensorF32(model.entry(name))
    const eps = 2e-3
    const loss = async (delta: number): Promise<number> => {
      const view = withReplacements(model)
      const w = base.slice()
      w[at] += delta
      view.replace(name, w)
      return (await perplexity(pool, view, window, { seqlen: T })).mean_nll
    }
    return ((await loss(eps)) - (await loss(-eps))) / (2 * eps)
  }

  it('covers every block Linear, shaped like its weight', () => {
    const linears = model.tensors.filter((t) => /layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(t.name))
    expect(linears).toHaveLength(35)
    for (const t of linears) expect(fisher.get(t.name)?.length).toBe(t.shape[0] * t.shape[1])
  })

  for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.4.mlp.down_proj.weight']) {
    it(`is the mean over windows of the squared per-window gradient (${name})`, async () => {
      const f = fisher.get(name)!
      // the weight with the largest Fisher: the clearest signal over the forward pass's rounding
      let at = 0
      for (let i = 1; i < f.length; i++) if (f[i] > f[at]) at = i
      const g = await Promise.all(windows.map((w) => finiteDifference(name, at, w)))
      const want = (g[0] ** 2 + g[1] ** 2) / 2
      expect(Math.abs(f[at] / want - 1)).toBeLessThan(1e-3)
      // not the squared mean gradient, unless the two happen to agree
      if (Math.abs(g[0] - g[1]) > 0.2 * Math.abs(g[0] + g[1]))
        expect(Math.abs(f[at] / ((g[0] + g[1]) / 2) ** 2 - 1)).toBeGreaterThan(0.05)
    })
  }

  it('refuses a model the training engine cannot run, with a typed error', async () => {
    const gpt2Like = { ...model, arch: { ...model.arch, family: 'gpt2' as const } } as LoadedModel
    await expect(fisherDiagonal(pool, gpt2Like, windows)).rejects.toMatchObject({ code: 'unsupported' })
  })
})
