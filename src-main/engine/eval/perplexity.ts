// Perplexity over n = floor(N/seqlen) non-overlapping windows of the once-tokenized text, by one of two
// protocols (PERPLEXITY_PROTOCOLS):
// - 'gptq', ../shared/README.md's (the GPTQ repo's llama_eval): each window run from position 0 with no
//   extra BOS, ppl = exp(Σ NLL / (n·(seqlen−1))) over every next-token prediction inside every window;
// - 'llama.cpp', llama-perplexity's: each window's first token replaced by BOS (when the vocabulary adds
//   one), and only the predictions made from its second half scored (positions ⌊seqlen/2⌋ … seqlen−2,
//   seqlen−1−⌊seqlen/2⌋ per window), so that Whittle's number for a GGUF can be put beside
//   `llama-perplexity -c seqlen`'s for the same file.

import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { WhittleError } from '../errors'
import { createForward } from '../forward'
import type { ForwardHooks } from '../forward'
import { PERPLEXITY_PROTOCOLS, type PerplexityProtocol } from '../../contract/analysis-types'

export { PERPLEXITY_PROTOCOLS, type PerplexityProtocol }

/** The first prediction a window's score counts, by protocol: llama-perplexity scores the second half. */
export function firstScoredPosition(protocol: PerplexityProtocol, seqlen: number): number {
  return protocol === 'llama.cpp' ? Math.floor(seqlen / 2) : 0
}

export interface PerplexityOptions {
  seqlen: number
  /** Default 'gptq'. */
  protocol?: PerplexityProtocol
  /** For 'llama.cpp': the token each window starts with in place of its own (null: keep it, as llama.cpp does for a vocabulary that adds no BOS). */
  bos?: number | null
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
  protocol: PerplexityProtocol
  /** Next-token predictions scored. */
  predictions: number
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
  const protocol = options.protocol ?? 'gptq'
  const bos = protocol === 'llama.cpp' ? (options.bos ?? null) : null
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
  const first = firstScoredPosition(protocol, seqlen)
  if (first >= seqlen - 1)
    throw new WhittleError('validation', null, `the ${protocol} protocol scores nothing in windows of ${seqlen} tokens`)
  const forward = await createForward(pool, model)
  const batch = Math.max(1, Math.min(n, options.batch ?? forward.windowsPerBatch(seqlen)))
  const started = performance.now()
  let sum = 0
  try {
    for (let w0 = 0; w0 < n; w0 += batch) {
      const windows: Int32Array[] = []
      for (let w = w0; w < Math.min(n, w0 + batch); w++) {
        const window = ids.subarray(w * seqlen, (w + 1) * seqlen)
        if (bos === null) windows.push(window)
        else {
          const withBos = window.slice()
          withBos[0] = bos
          windows.push(withBos)
        }
      }
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
      for (const row of nll) for (let i = first; i < row.length; i++) sum += row[i]
    }
  } finally {
    forward.close()
  }
  const seconds = (performance.now() - started) / 1000
  const predictions = n * (seqlen - 1 - first)
  const mean = sum / predictions
  return {
    ppl: Math.exp(mean),
    mean_nll: mean,
    tokens: ids.length,
    windows: n,
    seqlen,
    protocol,
    predictions,
    tokens_evaluated: n * seqlen,
    tokens_per_second: (n * seqlen) / seconds,
    seconds,
  }
}
