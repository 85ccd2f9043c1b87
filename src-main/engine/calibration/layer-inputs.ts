// The calibration hook of the sequential compression pipeline: one decoder block runs forward over the
// calibration windows, and the inputs of the Linears a step targets are recorded as they go by, per input
// group (Linears that read the same tensor share one record). What is kept:
// - the statistics of capture.ts (absmax, Σ|x|, Σx²), and the Hessian Σ xᵀx when the method asks for it;
// - a strided sample of input rows, for measuring the output error of the compressed weights.
// Hessians accumulate on the pool's workers (kernel-hessian.ts), one accumulator per group, with the
// group's per-column statistics: in kernel memory, or banded (H in JS memory, a band of rows at a time in
// kernel memory) when the K×K matrix does not fit there. Where not even a band fits, the group falls back
// to accumulateInput's JS loop. All give the same bits.

import type { InputGroup } from '../../contract/api'
import { isOutOfMemory } from '../errors'
import { INPUT_GROUP, RECORDING_ROLES, type CausalLM } from '../forward/causal-lm'
import type { WorkerPool } from '../pool/worker-pool'
import { accumulateInput, emptyInputStats, finishHessian, type InputStats } from './capture'
import { KernelHessian } from './kernel-hessian'

/** A group's input statistics with a sample of its rows. */
export interface SampledInputStats extends InputStats {
  /** Up to `sampleRows` rows of the input [rows, channels], taken at an even stride over the tokens. */
  sample: Float32Array
  sampleRows: number
}

export interface LayerInputOptions {
  /** The input groups to record: those the step targets in this layer. */
  groups: ReadonlySet<InputGroup>
  /** Accumulate the Hessian Σ xᵀx of each group's input. */
  hessian: boolean
  /** Input rows kept per group as a sample, at most. */
  sampleRows: number
  /** Calibration windows behind `input` (recorded in the statistics). */
  windows: number
  /**
   * Whether the caller uses the block's output in `input` (default true). When false the block may stop
   * after the last input it records (ForwardHooks.inputsOnly), and `input` is left as it was.
   */
  outputNeeded?: boolean
}

/**
 * A K×K accumulator on the kernels (column statistics too): in kernel memory, else banded (H in JS memory,
 * visiting kernel memory a band at a time), or null when kernel memory is too short even for that.
 */
function kernelHessianOrNull(pool: WorkerPool, K: number): KernelHessian | null {
  for (const banded of [false, true]) {
    try {
      return new KernelHessian(pool, K, undefined, { columnStats: true, banded })
    } catch (e) {
      if (!isOutOfMemory(e)) throw e
    }
  }
  return null
}

function emptySampledStats(K: number, hessian: boolean, tokens: number, sampleRows: number): SampledInputStats {
  return { ...emptyInputStats(K, hessian), sample: new Float32Array(Math.min(sampleRows, tokens) * K), sampleRows: 0 }
}

/**
 * Runs block `layer` of `forward` over `input` (hidden states [tokens, H] of windows of `seqlen` tokens;
 * updated in place, as block() does, unless options.outputNeeded is false: then only read) and returns the statistics of
 * the inputs of `options.groups`.
 */
export async function captureLayerInputs(
  pool: WorkerPool,
  forward: CausalLM,
  layer: number,
  input: Float32Array,
  seqlen: number,
  options: LayerInputOptions,
): Promise<Map<InputGroup, SampledInputStats>> {
  const stats = new Map<InputGroup, SampledInputStats>()
  const tokens = input.length / forward.arch.hiddenSize
  const stride = Math.max(1, Math.floor(tokens / options.sampleRows))
  const accumulators = new Map<InputGroup, KernelHessian>()
  const adds: Promise<void>[] = []
  try {
    await forward.block(layer, input, seqlen, {
      inputsOnly: options.outputNeeded === false,
      linearInput(_l, role, x, M, K, held) {
        const group = INPUT_GROUP[role]
        // Linears sharing an input see the same tensor: record it once, from the group's first reader.
        if (!RECORDING_ROLES.has(role) || !options.groups.has(group)) return
        let s = stats.get(group)
        if (!s) {
          const accumulator = options.hessian ? kernelHessianOrNull(pool, K) : null
          if (accumulator) accumulators.set(group, accumulator)
          stats.set(group, (s = emptySampledStats(K, options.hessian && !accumulator, tokens, options.sampleRows)))
        }
        // The accumulator reads x on the workers (the column statistics too), after this call returns: in
        // place where the block holds x for it, else from a snapshot (in kernel memory where there is room).
        const accumulator = accumulators.get(group)
        if (accumulator) {
          if (held) {
            const add = accumulator.addInKernelMemory(held.ptr, M)
            held.keepUntil(add)
            adds.push(add)
          } else adds.push(accumulator.addSnapshot(x, M))
          s.tokens += M
        } else accumulateInput(s, x, M, K)
        for (let t = 0; t < M && s.sampleRows < s.sample.length / K; t += stride) {
          s.sample.set(x.subarray(t * K, (t + 1) * K), s.sampleRows * K)
          s.sampleRows++
        }
      },
    })
    await Promise.all(adds)
    for (const [group, accumulator] of accumulators) {
      const s = stats.get(group)!
      s.hessian = accumulator.toArray()
      Object.assign(s, accumulator.columnStats())
    }
  } finally {
    // Settle every add (so none rejects unobserved) before the memory goes back.
    await Promise.allSettled(adds)
    for (const accumulator of accumulators.values()) accumulator.free()
  }
  for (const [group, s] of stats) {
    s.windows = options.windows
    if (!accumulators.has(group)) finishHessian(s)
  }
  return stats
}
