// What the attention cache holds and what quantizing it costs: per layer and kv head, the range of each
// key and value channel (keys after RoPE) — the per-channel key outliers KIVI quantizes keys per channel
// for — then the perplexity of each KV-cache scheme and the memory it saves per token of context.

import type { KvCacheAnalysis, KvHeadRanges, KvSchemeResult } from '../../contract/api'
import type { ModelArchitecture } from '../arch/types'
import { WhittleError } from '../errors'
import { perplexity } from '../eval/perplexity'
import {
  kvCacheHooks,
  kvCacheLabel,
  kvCacheMemory,
  ggmlCacheLayout,
  llamaCppCacheFlags,
  parseKvCacheSetting,
  type CacheShape,
  type KvCacheSetting,
} from '../forward/kv-cache-quant'
import type { ForwardHooks } from '../forward'
import { KV_CACHE_SETTINGS } from '../../contract/kv-cache-settings'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'

/** The settings the analysis measures when none are asked for: each scheme at its usual widths. */
export const DEFAULT_KV_SETTINGS: readonly string[] = KV_CACHE_SETTINGS

/** The `kv_cache` field of a report (whittle eval --json): the setting, what it stores, llama.cpp's flags. */
export interface KvCacheReport {
  scheme: string
  key_bits: number
  value_bits: number
  bytes_per_token: number
  baseline_bytes_per_token: number
  context_length: number
  saved_bytes: number
  /** `--cache-type-k … --cache-type-v …` for the GGUF cache types; null for the schemes llama.cpp lacks. */
  llama_cpp: string | null
  note?: string
}

function layoutNote(shape: CacheShape, s: KvCacheSetting): string | undefined {
  return s.scheme === 'ggml' ? ggmlCacheLayout(s.type, shape.kvHeads, shape.headDim).note : undefined
}

export function kvCacheReport(shape: CacheShape, s: KvCacheSetting, contextLength: number): KvCacheReport {
  const m = kvCacheMemory(shape, s, contextLength)
  const note = layoutNote(shape, s)
  return {
    scheme: kvCacheLabel(s),
    key_bits: m.keyBits,
    value_bits: m.valueBits,
    bytes_per_token: m.bytesPerToken,
    baseline_bytes_per_token: m.baselineBytesPerToken,
    context_length: contextLength,
    saved_bytes: m.savedBytes,
    llama_cpp: llamaCppCacheFlags(s)?.flags ?? null,
    ...(note ? { note } : {}),
  }
}

/** Running per-channel extremes and per-vector ranges of one (layer, kv head). */
interface HeadAccumulator {
  keyAbsMax: Float64Array
  valueAbsMax: Float64Array
  keyRangeSum: number
  valueRangeSum: number
  vectors: number
}

function vectorRange(x: Float32Array, at: number, n: number): number {
  let lo = Infinity,
    hi = -Infinity
  for (let i = at; i < at + n; i++) {
    lo = Math.min(lo, x[i])
    hi = Math.max(hi, x[i])
  }
  return hi - lo
}

/** Hooks that record the cache's ranges without changing it. */
export function kvRangeRecorder(arch: Pick<ModelArchitecture, 'layers' | 'kvHeads' | 'headDim'>): {
  hooks: ForwardHooks
  ranges: () => KvHeadRanges[]
} {
  const acc: HeadAccumulator[] = []
  for (let i = 0; i < arch.layers * arch.kvHeads; i++)
    acc.push({
      keyAbsMax: new Float64Array(arch.headDim),
      valueAbsMax: new Float64Array(arch.headDim),
      keyRangeSum: 0,
      valueRangeSum: 0,
      vectors: 0,
    })
  const hooks: ForwardHooks = {
    keysValues(layer, k, v, T, kvHeads, headDim) {
      const width = kvHeads * headDim
      for (let h = 0; h < kvHeads; h++) {
        const a = acc[layer * kvHeads + h]
        for (let t = 0; t < T; t++) {
          const at = t * width + h * headDim
          for (let c = 0; c < headDim; c++) {
            a.keyAbsMax[c] = Math.max(a.keyAbsMax[c], Math.abs(k[at + c]))
            a.valueAbsMax[c] = Math.max(a.valueAbsMax[c], Math.abs(v[at + c]))
          }
          a.keyRangeSum += vectorRange(k, at, headDim)
          a.valueRangeSum += vectorRange(v, at, headDim)
        }
        a.vectors += T
      }
    },
  }
  const ranges = (): KvHeadRanges[] =>
    acc.map((a, i) => ({
      layer: Math.floor(i / arch.kvHeads),
      head: i % arch.kvHeads,
      keyAbsMax: Array.from(a.keyAbsMax),
      valueAbsMax: Array.from(a.valueAbsMax),
      keyTokenRange: a.vectors ? a.keyRangeSum / a.vectors : 0,
      valueTokenRange: a.vectors ? a.valueRangeSum / a.vectors : 0,
      keyOutlierRatio: outlierRatio(a.keyAbsMax),
      valueOutlierRatio: outlierRatio(a.valueAbsMax),
    }))
  return { hooks, ranges }
}

/** The largest channel's absmax over the median channel's: how far one channel stands out. */
function outlierRatio(absMax: Float64Array): number {
  const sorted = Array.from(absMax).sort((x, y) => x - y)
  const mid = sorted.length / 2
  const median = sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2
  return median > 0 ? sorted[sorted.length - 1] / median : 0
}

export interface KvCacheAnalysisOptions {
  seqlen: number
  maxWindows?: number
  /** Setting texts (parseKvCacheSetting); default DEFAULT_KV_SETTINGS. */
  settings?: readonly string[]
  /** The context length memory is reported for; default seqlen. */
  contextLength?: number
  textFile?: string
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
}

/**
 * One unquantized pass recording the ranges (and the baseline perplexity), then one pass per setting.
 * Settings this model cannot take (a block larger than its cache row) are reported with ppl null.
 */
export async function kvCacheAnalysis(
  pool: WorkerPool,
  model: LoadedModel,
  ids: Int32Array,
  options: KvCacheAnalysisOptions,
): Promise<KvCacheAnalysis> {
  const settings = (options.settings ?? DEFAULT_KV_SETTINGS).map(parseKvCacheSetting)
  const contextLength = options.contextLength ?? options.seqlen
  const passes = settings.length + 1
  const run = (i: number, label: string, hooks: ForwardHooks) =>
    perplexity(pool, model, ids, {
      seqlen: options.seqlen,
      maxWindows: options.maxWindows,
      textFile: options.textFile,
      signal: options.signal,
      hooks,
      onProgress: (f, message) => options.onProgress?.((i + f) / passes, `${label}: ${message}`),
    })
  const recorder = kvRangeRecorder(model.arch)
  const baseline = await run(0, 'unquantized cache', recorder.hooks)
  const schemes: KvSchemeResult[] = []
  for (const [i, s] of settings.entries()) {
    const m = kvCacheMemory(model.arch, s, contextLength)
    const label = kvCacheLabel(s)
    let ppl: number | null = null
    let note: string | undefined
    try {
      note = layoutNote(model.arch, s)
      ppl = (await run(i + 1, label, kvCacheHooks(s))).ppl
    } catch (e) {
      if (!(e instanceof WhittleError && e.code === 'unsupported')) throw e
      note = e.message
    }
    schemes.push({
      setting: label,
      ppl,
      keyBits: m.keyBits,
      valueBits: m.valueBits,
      bytesPerToken: m.bytesPerToken,
      savedBytes: m.savedBytes,
      llamaCpp: llamaCppCacheFlags(s)?.flags ?? null,
      ...(note ? { note } : {}),
    })
  }
  const base = kvCacheMemory(model.arch, { scheme: 'token', bits: 8 }, contextLength)
  return {
    seqlen: options.seqlen,
    windows: baseline.windows,
    contextLength,
    layers: model.arch.layers,
    kvHeads: model.arch.kvHeads,
    headDim: model.arch.headDim,
    baselinePpl: baseline.ppl,
    baselineBytesPerToken: base.baselineBytesPerToken,
    heads: recorder.ranges(),
    schemes,
  }
}
