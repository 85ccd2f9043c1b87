// A forward pass over calibration windows that keeps every block's input hidden states, so probes
// (zero one head, skip one block) can restart at that block instead of at the embeddings.

import type { CausalLM, ForwardHooks } from '../forward/causal-lm'
import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'

export interface BaselineRun {
  T: number
  windows: Int32Array[]
  /** inputs[l] = hidden states entering block l; inputs[layers] = after the last block. */
  inputs: Float32Array[]
  meanNll: number
}

export function meanOf(rows: Float64Array[]): number {
  let sum = 0,
    n = 0
  for (const r of rows)
    for (const v of r) {
      sum += v
      n++
    }
  return n ? sum / n : 0
}

/** Caps the cached hidden states of a probe at this many bytes. */
export const PROBE_CACHE_BYTES = 768 << 20

export async function baselineRun(
  forward: CausalLM,
  windows: Int32Array[],
  hooks?: ForwardHooks,
  signal?: AbortSignal,
): Promise<BaselineRun> {
  const T = windows[0].length
  const a = forward.arch
  const bytes = (a.layers + 1) * windows.length * T * a.hiddenSize * 4
  if (bytes > PROBE_CACHE_BYTES) {
    throw new WhittleError(
      'validation',
      null,
      `this probe would cache ${(bytes / 2 ** 20).toFixed(0)} MiB of hidden states; use fewer calibration samples or a shorter seqlen`,
    )
  }
  const hidden = await forward.embed(windows)
  const inputs: Float32Array[] = []
  for (let l = 0; l < a.layers; l++) {
    throwIfCancelled(signal)
    inputs.push(hidden.slice())
    await forward.block(l, hidden, T, hooks)
  }
  inputs.push(hidden.slice())
  const meanNll = meanOf(await forward.nll(hidden, windows))
  return { T, windows, inputs, meanNll }
}

/** Runs blocks from..layers−1 on a copy of the cached input of block `from` and returns the mean NLL. */
export async function resumeFrom(
  forward: CausalLM,
  run: BaselineRun,
  from: number,
  skip: number | null,
  hooks?: ForwardHooks,
): Promise<number> {
  const hidden = run.inputs[from].slice()
  for (let l = from; l < forward.arch.layers; l++) {
    if (l === skip) continue
    await forward.block(l, hidden, run.T, hooks)
  }
  return meanOf(await forward.nll(hidden, run.windows))
}
