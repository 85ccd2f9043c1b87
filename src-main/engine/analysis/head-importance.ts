// Attention-head importance two ways:
// - ablation: the mean calibration NLL increase when one head's output is zeroed (exact, L·H passes);
// - proxy: the mean L2 norm of the head's contribution through o_proj (one pass).
// Their rank correlation says how far the cheap proxy can stand in for the expensive measure.

import type { HeadImportance } from '../../contract/api'
import { tensorName } from '../arch'
import { throwIfCancelled } from '../jobs/cancel'
import { readTensorF32 } from '../formats/read'
import type { CausalLM } from '../forward/causal-lm'
import type { LoadedModel } from '../model/loaded-model'
import { baselineRun, resumeFrom } from './baseline-run'
import { spearman } from './rank-correlation'

export interface ProbeOptions {
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export async function headImportance(
  forward: CausalLM,
  model: LoadedModel,
  windows: Int32Array[],
  options: ProbeOptions = {},
): Promise<HeadImportance> {
  const a = model.arch
  const { layers: L, heads: nH, headDim: hd, hiddenSize: H } = a
  const qDim = nH * hd
  const proxySum = Array.from({ length: L }, () => new Float64Array(nH))
  const tokens = new Float64Array(L)
  const wo: Float32Array[] = []
  for (let l = 0; l < L; l++) wo.push(await readTensorF32(model.entry(tensorName(a, l, 'o')!)))

  const run = await baselineRun(
    forward,
    windows,
    {
      attentionOutput(layer, att, M) {
        // ‖W_o[:, head] · a_head‖ per token, accumulated; W_o is [H, qDim].
        const W = wo[layer]
        const y = new Float64Array(H)
        for (let t = 0; t < M; t++) {
          const at = t * qDim
          for (let h = 0; h < nH; h++) {
            y.fill(0)
            for (let r = 0; r < H; r++) {
              let s = 0
              const wr = r * qDim + h * hd
              for (let d = 0; d < hd; d++) s += W[wr + d] * att[at + h * hd + d]
              y[r] = s
            }
            let n2 = 0
            for (let r = 0; r < H; r++) n2 += y[r] * y[r]
            proxySum[layer][h] += Math.sqrt(n2)
          }
        }
        tokens[layer] += M
      },
    },
    options.signal,
  )

  const ablation = Array.from({ length: L }, () => new Array<number>(nH).fill(0))
  let done = 0
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < nH; h++) {
      throwIfCancelled(options.signal)
      const nll = await resumeFrom(forward, run, l, null, {
        attentionOutput(layer, att, M) {
          if (layer !== l) return
          for (let t = 0; t < M; t++) att.fill(0, t * qDim + h * hd, t * qDim + (h + 1) * hd)
        },
      })
      ablation[l][h] = nll - run.meanNll
      options.onProgress?.(++done / (L * nH), `head ablation: layer ${l}, head ${h}`)
    }
  }
  const proxy = proxySum.map((row, l) => Array.from(row, (v) => v / Math.max(1, tokens[l])))
  return {
    layers: L,
    heads: nH,
    samples: windows.length,
    seqlen: run.T,
    baselineNll: run.meanNll,
    ablation,
    proxy,
    rankCorrelation: spearman(ablation.flat(), proxy.flat()),
  }
}
