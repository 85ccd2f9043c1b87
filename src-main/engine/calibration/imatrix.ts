// Computing an importance matrix as llama.cpp's llama-imatrix does: the calibration text's ids are cut into
// chunks of `ctx` tokens (at most `chunks` of them; the first token of every chunk replaced by BOS), each
// chunk runs through the model on its own, and every Linear inside the decoder blocks gets, per input
// column, Σx² over all the tokens it saw and the number of tokens. Linears that read the same tensor
// (q/k/v; gate/up) get the same sums, as in llama.cpp, where each matmul records its own input.
// The output head and the embedding get no entry (llama-imatrix collects only blk.* unless told otherwise).
//
// The sums are kept in f32 and added token by token in order, as llama-imatrix's collector adds them, so
// the only difference from llama.cpp's values is the forward pass's own rounding: up to ~5e-4 relative
// after the first attention (llama.cpp attends over an f16 KV cache), within 1e-4 with llamaCppAttention.

import type { InputGroup } from '../../contract/api'
import type { TensorPlace } from '../arch/types'
import { WhittleError } from '../errors'
import type { Imatrix, ImatrixEntry } from '../formats/imatrix-data'
import { ggufTokenizerOf, tokenizerSourceOf } from '../formats/model-tokenizer'
import type { ModelFiles } from '../formats/types'
import { createForward } from '../forward'
import { INPUT_GROUP, RECORDING_ROLES, type LinearRole } from '../forward/causal-lm'
import { throwIfCancelled } from '../jobs/cancel'
import { LlamaCppAttention } from './imatrix-llama-attention'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'

/** Whittle's default chunk length; pass the -c of a llama-imatrix run to reproduce it (its own default follows llama.cpp's context default). */
export const DEFAULT_IMATRIX_CTX = 512
/** Chunks that go through the model together: llama-imatrix's default batch of 2048 tokens holds 2048 / ctx. */
const BATCH_TOKENS = 2048

export interface ImatrixOptions {
  /** Tokens per chunk (llama-imatrix -c). */
  ctx: number
  /** At most this many chunks (--chunks); all that fit when absent. */
  chunks?: number
  /** The BOS id written at each chunk's start, or null for a tokenizer without add_bos (then none is). */
  bos: number | null
  /** The name the entry of a Linear gets (llama.cpp's GGUF tensor name), or null to leave it out. */
  entryName: (place: TensorPlace) => string | null
  /** Recorded in the file (imatrix.datasets). */
  dataset: string
  /**
   * Replay llama.cpp's attention (f16 KV cache, CPU flash attention; imatrix-llama-attention.ts) instead
   * of Whittle's f32 one, so every value matches llama-imatrix's to 1e-4. Slow: for small models and checks.
   */
  llamaCppAttention?: boolean
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

export interface ImatrixResult {
  imatrix: Imatrix
  /** Tokens the text had, and how many of them the chunks used. */
  textTokens: number
  usedTokens: number
  /**
   * Perplexity over the second half of every chunk, as llama-imatrix prints it: a check that the model and
   * tokenizer agree with the text (a wrong tokenizer shows as a very large value).
   */
  perplexity: number
}

const LINEAR_ROLES: ReadonlySet<string> = new Set(Object.keys(INPUT_GROUP))

interface GroupSums {
  sums: Float32Array
  tokens: number
  /** Entry names of the Linears that read this input. */
  names: string[]
}

/** The chunks llama-imatrix makes of `ids`: consecutive, `ctx` long, BOS first; too short a text is refused. */
export function imatrixChunks(
  ids: Int32Array,
  ctx: number,
  chunks: number | undefined,
  bos: number | null,
  file: string | null = null,
): Int32Array[] {
  if (!Number.isInteger(ctx) || ctx < 2)
    throw new WhittleError('validation', null, `the imatrix context must be an integer ≥ 2 (got ${ctx})`)
  if (chunks !== undefined && (!Number.isInteger(chunks) || chunks < 1))
    throw new WhittleError('validation', null, `--chunks must be a positive integer (got ${chunks})`)
  // llama-imatrix needs two chunks' worth of tokens, whatever --chunks says.
  if (ids.length < 2 * ctx)
    throw new WhittleError(
      'validation',
      file,
      `the text has ${ids.length} tokens; an imatrix with a context of ${ctx} needs at least ${2 * ctx}`,
    )
  const n = Math.min(Math.floor(ids.length / ctx), chunks ?? Infinity)
  return Array.from({ length: n }, (_, i) => {
    const chunk = ids.slice(i * ctx, (i + 1) * ctx)
    if (bos !== null) chunk[0] = bos
    return chunk
  })
}

/**
 * The BOS each chunk starts with, given the text's ids as the eval tokenizer made them (BOS first where
 * the tokenizer adds one): a GGUF's own tokenizer says through add_bos_token (llama.cpp's rule); with a
 * tokenizer.json the eval ids always start with BOS.
 */
export async function chunkBos(files: ModelFiles, ids: Int32Array): Promise<number | null> {
  if (tokenizerSourceOf(files) === 'gguf') {
    const { addBos, bosId } = (await ggufTokenizerOf(files.files[0])).vocab
    return addBos && bosId !== null ? bosId : null
  }
  return ids.length > 0 ? ids[0] : null
}

function addSquares(sums: Float32Array, x: Float32Array, M: number, K: number): void {
  for (let t = 0; t < M; t++) {
    const row = t * K
    // f32 products added in f32, as ggml's collector does (Math.fround twice is exact f32 arithmetic).
    for (let j = 0; j < K; j++) sums[j] = Math.fround(sums[j] + Math.fround(x[row + j] * x[row + j]))
  }
}

/** Σx² per input column of every decoder-block Linear over the chunks of `ids`. */
export async function computeImatrix(
  pool: WorkerPool,
  model: LoadedModel,
  ids: Int32Array,
  options: ImatrixOptions,
): Promise<ImatrixResult> {
  const chunks = imatrixChunks(ids, options.ctx, options.chunks, options.bos)
  const a = model.arch
  // Per layer, per input group: the Linears reading it, by their entry names.
  const groups: Map<InputGroup, GroupSums>[] = Array.from({ length: a.layers }, () => new Map())
  for (const place of Object.values(a.places)) {
    if (place.layer === null || place.bias || !LINEAR_ROLES.has(place.role)) continue
    const name = options.entryName(place)
    if (name === null) continue
    const group = INPUT_GROUP[place.role as LinearRole]
    const g = groups[place.layer].get(group)
    if (g) g.names.push(name)
    else groups[place.layer].set(group, { sums: new Float32Array(0), tokens: 0, names: [name] })
  }
  if (groups.every((g) => g.size === 0))
    throw new WhittleError(
      'unsupported',
      model.files.path,
      'has no decoder-block Linears an importance matrix could name',
    )

  const forward = await createForward(pool, model)
  const replay = options.llamaCppAttention ? LlamaCppAttention.create(pool, model, options.ctx) : null
  const perBatch = Math.max(1, Math.floor(BATCH_TOKENS / options.ctx))
  const half = Math.floor(options.ctx / 2)
  let nll = 0
  let scored = 0
  try {
    for (let c0 = 0; c0 < chunks.length; c0 += perBatch) {
      const batch = chunks.slice(c0, c0 + perBatch)
      const hidden = await forward.embed(batch)
      for (let layer = 0; layer < a.layers; layer++) {
        throwIfCancelled(options.signal)
        await replay?.prepare(layer)
        await forward.block(layer, hidden, options.ctx, {
          attentionOutput: replay ? (_layer, att, M) => replay.replace(layer, att, M) : undefined,
          linearInput(_layer, role, x, M, K) {
            if (replay && role === 'q') replay.keepInput(x)
            if (!RECORDING_ROLES.has(role)) return
            const g = groups[layer].get(INPUT_GROUP[role])
            if (!g) return
            if (g.sums.length === 0) g.sums = new Float32Array(K)
            addSquares(g.sums, x, M, K)
            g.tokens += M
          },
        })
      }
      // llama-imatrix's perplexity: positions from ctx/2 on, each predicting the next token.
      for (const w of await forward.nll(hidden, batch)) {
        for (let t = half; t < w.length; t++) nll += w[t]
        scored += Math.max(0, w.length - half)
      }
      const done = Math.min(chunks.length, c0 + perBatch)
      options.onProgress?.(done / chunks.length, `imatrix: chunk ${done}/${chunks.length}`)
    }
  } finally {
    forward.close()
  }

  const entries = new Map<string, ImatrixEntry>()
  for (const layer of groups) {
    for (const g of layer.values()) {
      if (g.tokens === 0) continue
      for (const name of g.names)
        entries.set(name, { columns: g.sums.length, sums: g.sums.slice(), counts: Float64Array.of(g.tokens) })
    }
  }
  return {
    imatrix: {
      entries,
      countUnit: 'tokens',
      chunkCount: chunks.length,
      chunkSize: options.ctx,
      datasets: [options.dataset],
    },
    textTokens: ids.length,
    usedTokens: chunks.length * options.ctx,
    perplexity: scored > 0 ? Math.exp(nll / scored) : NaN,
  }
}
