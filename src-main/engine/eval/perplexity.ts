// Perplexity with the protocol of ../shared/README.md (the GPTQ repo's llama_eval): n = floor(N/seqlen)
// non-overlapping windows, each run from position 0 with no extra BOS, and
// ppl = exp(Σ NLL / (n·(seqlen−1))) over every next-token prediction inside every window.

import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { WhittleError } from '../errors'
import { createForward } from '../forward'
import type { ForwardHooks } from '../forward'

export interface PerplexityOptions {
  seqlen: number
  /** Evaluate only the first N windows (benchmarks, previews). */
  maxWindows?: number
  /** Windows per forward batch; default from an activation budget. */
  batch?: number
  signal?: AbortSignal
  /** Passed to the forward pass (e.g. KV-cache quantization). */
  hooks?: ForwardHooks
  /** The text's file, named in errors about the text ("t.txt: the text has 1 token, …"). */
  textFile?: string
  onProgress?: (fraction: number, message: string) => void
}

export interface PerplexityResult {
  ppl: number
  mean_nll: number
  tokens: number
  windows: number
  seqlen: number
  /** Tokens run through the model (windows × seqlen). */
  tokens_evaluated: number
  tokens_per_second: number
  seconds: number
}

export async function perplexity(
  pool: WorkerPool,
  model: LoadedModel,
  ids: Int32Array,
  options: PerplexityOptions,
): Promise<PerplexityResult> {
  const { seqlen } = options
  if (!Number.isInteger(seqlen) || seqlen < 2)
    throw new WhittleError('validation', null, `seqlen must be an integer ≥ 2 (got ${seqlen})`)
  let n = Math.floor(ids.length / seqlen)
  if (options.maxWindows !== undefined) n = Math.min(n, options.maxWindows)
  if (n === 0) {
    const tokens = `${ids.length} token${ids.length === 1 ? '' : 's'}`
    throw new WhittleError(
      'validation',
      options.textFile ?? null,
      `the text has ${tokens}, fewer than one window of ${seqlen}`,
    )
  }
  const forward = await createForward(pool, model)
  const batch = Math.max(1, Math.min(n, options.batch ?? forward.windowsPerPass(seqlen)))
  const started = performance.now()
  let sum = 0
  try {
    for (let w0 = 0; w0 < n; w0 += batch) {
      const windows: Int32Array[] = []
      for (let w = w0; w < Math.min(n, w0 + batch); w++) windows.push(ids.subarray(w * seqlen, (w + 1) * seqlen))
      const nll = await forward.windowNll(windows, {
        signal: options.signal,
        hooks: options.hooks,
        onLayer: (layer) => {
          const done = w0 + (windows.length * (layer + 1)) / model.arch.layers
          const secs = (performance.now() - started) / 1000
          const tps = (done * seqlen) / Math.max(secs, 1e-9)
          const eta = ((n - done) * seqlen) / Math.max(tps, 1e-9)
          options.onProgress?.(
            done / n,
            `window ${Math.min(n, Math.ceil(done))}/${n} · ${tps.toFixed(0)} tok/s · ETA ${eta.toFixed(0)} s`,
          )
        },
      })
      for (const row of nll) for (let i = 0; i < row.length; i++) sum += row[i]
    }
  } finally {
    forward.close()
  }
  const seconds = (performance.now() - started) / 1000
  const mean = sum / (n * (seqlen - 1))
  return {
    ppl: Math.exp(mean),
    mean_nll: mean,
    tokens: ids.length,
    windows: n,
    seqlen,
    tokens_evaluated: n * seqlen,
    tokens_per_second: (n * seqlen) / seconds,
    seconds,
  }
}
