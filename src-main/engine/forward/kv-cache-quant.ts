// KV-cache quantization, simulated in the forward pass: each window's keys (after RoPE) and values (as
// the projection produced them) are quantized and dequantized in place just before attention reads them,
// so perplexity measures what a quantized cache costs. Schemes:
// - token: one asymmetric min-max grid per (token, kv head) vector of head_dim values;
// - kivi (Liu et al. 2024): keys per channel over groups of 32 consecutive tokens from token 0 of the
//   window, values per (token, kv head); optionally the last `residual` tokens stay in full precision, as
//   KIVI keeps its most recent tokens;
// - llama.cpp's cache types (q8_0 … iq4_nl): ggml blocks along each token's cache row.
// The min-max grid is the GPTQ reference's (range holds 0, round half to even, f32), from numerics/.

import type { ModelArchitecture } from '../arch/types'
import { WhittleError } from '../errors'
import { bitsPerWeight, ggmlBlockByName, type GgmlBlockInfo } from '../numerics/ggml-blocks'
import { minmaxGrid, quantizeValue } from '../numerics/minmax-grid'
import { quantizeBlocks } from '../../../kernels/reference/ggml-quantize-all'
import { dequantizeBlocks, type BlockType } from '../../../kernels/reference/ggml-dequant-all'
import type { ForwardHooks } from './causal-lm'

/** The cache types llama.cpp's --cache-type-k/-v take that are block-quantized, by llama.cpp's own names. */
export const LLAMA_CPP_CACHE_TYPES = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'] as const
export type LlamaCppCacheType = (typeof LLAMA_CPP_CACHE_TYPES)[number]

/** Tokens per key group of the kivi scheme (KIVI's group size). */
export const KIVI_GROUP = 32
/** The bit widths the min-max schemes take. */
export const KV_MIN_BITS = 1
export const KV_MAX_BITS = 8
/** Each min-max group stores a scale and a minimum, fp16 each (as KIVI does). */
const GRID_OVERHEAD_BITS = 32
/** The unquantized cache memory is compared against: llama.cpp's default f16 cache. */
export const BASELINE_CACHE_BITS = 16

export type KvCacheSetting =
  | { scheme: 'token'; bits: number }
  /** residual: the last tokens of each window kept in full precision (0 = none, KIVI's window optional). */
  | { scheme: 'kivi'; bits: number; residual: number }
  | { scheme: 'ggml'; type: LlamaCppCacheType }

const SYNTAX = `token:BITS, kivi:BITS[:RESIDUAL] (BITS ${KV_MIN_BITS}–${KV_MAX_BITS}) or one of ${LLAMA_CPP_CACHE_TYPES.join(', ')}`

function invalid(text: string, problem: string): WhittleError {
  return new WhittleError('validation', null, `KV-cache setting "${text}": ${problem}; expected ${SYNTAX}`)
}

function intPart(text: string, part: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(part) || Number(part) < min || Number(part) > max)
    throw invalid(text, `${what} must be an integer from ${min} to ${max}, not "${part}"`)
  return Number(part)
}

/** Parses `token:4`, `kivi:2`, `kivi:2:128`, `q8_0`, … (the CLI's --kv and the API's setting text). */
export function parseKvCacheSetting(text: string): KvCacheSetting {
  const [scheme, ...rest] = text.trim().toLowerCase().split(':')
  if ((LLAMA_CPP_CACHE_TYPES as readonly string[]).includes(scheme)) {
    if (rest.length) throw invalid(text, `${scheme} takes no parameters`)
    return { scheme: 'ggml', type: scheme as LlamaCppCacheType }
  }
  if (scheme === 'token') {
    if (rest.length !== 1) throw invalid(text, 'token needs exactly one bit width')
    return { scheme, bits: intPart(text, rest[0], 'bits', KV_MIN_BITS, KV_MAX_BITS) }
  }
  if (scheme === 'kivi') {
    if (rest.length < 1 || rest.length > 2) throw invalid(text, 'kivi needs a bit width and optionally a residual')
    const bits = intPart(text, rest[0], 'bits', KV_MIN_BITS, KV_MAX_BITS)
    const residual = rest.length === 2 ? intPart(text, rest[1], 'the residual', 0, 1 << 20) : 0
    return { scheme, bits, residual }
  }
  throw invalid(text, `unknown scheme "${scheme}"`)
}

/** The setting as parseKvCacheSetting reads it back. */
export function kvCacheLabel(s: KvCacheSetting): string {
  if (s.scheme === 'ggml') return s.type
  if (s.scheme === 'token') return `token:${s.bits}`
  return s.residual ? `kivi:${s.bits}:${s.residual}` : `kivi:${s.bits}`
}

function blockOf(type: LlamaCppCacheType): GgmlBlockInfo {
  const info = ggmlBlockByName(type.toUpperCase())
  if (!info) throw new WhittleError('unsupported', null, `no ggml block geometry for cache type ${type}`)
  return info
}

/** What llama.cpp is told for the same cache (GGUF types only; null for the min-max schemes it lacks). */
export function llamaCppCacheFlags(
  s: KvCacheSetting,
): { cacheTypeK: string; cacheTypeV: string; flags: string } | null {
  if (s.scheme !== 'ggml') return null
  // llama.cpp quantizes the V cache only with flash attention on.
  return { cacheTypeK: s.type, cacheTypeV: s.type, flags: `--cache-type-k ${s.type} --cache-type-v ${s.type} -fa on` }
}

/**
 * Where a llama.cpp cache type's blocks run for this model: along each head's row when head_dim is a
 * whole number of blocks (as llama.cpp requires), else along each token's n_kv_heads·head_dim row, which
 * llama.cpp would refuse (the note says so). Throws when not even that row holds whole blocks.
 */
export function ggmlCacheLayout(
  type: LlamaCppCacheType,
  kvHeads: number,
  headDim: number,
): { rowLength: number; note?: string } {
  const n = blockOf(type).blockElements
  if (headDim % n === 0) return { rowLength: headDim }
  if ((kvHeads * headDim) % n === 0)
    return {
      rowLength: kvHeads * headDim,
      note:
        `head_dim ${headDim} is not a multiple of ${type}'s ${n}-value block, so llama.cpp would refuse this cache ` +
        `type for this model; its blocks here run along each token's ${kvHeads}·${headDim} cache row instead`,
    }
  throw new WhittleError(
    'unsupported',
    null,
    `cache type ${type}: neither head_dim ${headDim} nor the ${kvHeads}·${headDim} cache row is a multiple of its ${n}-value block`,
  )
}

/** x[at + i·stride], i < count, in place on the min-max grid of those values. */
function fakeQuantGroup(x: Float32Array, at: number, count: number, stride: number, bits: number): void {
  const grid = minmaxGrid(x, at, count, stride, bits, false)
  for (let i = 0, j = at; i < count; i++, j += stride) x[j] = quantizeValue(x[j], grid)
}

/** Each (token, kv head) vector of the first `tokens` rows of x [T, kvHeads·headDim] on its own grid. */
function fakeQuantPerTokenHead(x: Float32Array, tokens: number, kvHeads: number, headDim: number, bits: number): void {
  const width = kvHeads * headDim
  for (let t = 0; t < tokens; t++)
    for (let h = 0; h < kvHeads; h++) fakeQuantGroup(x, t * width + h * headDim, headDim, 1, bits)
}

/** Each channel of the first `tokens` rows of x [T, width], per group of KIVI_GROUP tokens from token 0. */
function fakeQuantPerChannel(x: Float32Array, tokens: number, width: number, bits: number): void {
  for (let t0 = 0; t0 < tokens; t0 += KIVI_GROUP) {
    const count = Math.min(KIVI_GROUP, tokens - t0)
    for (let c = 0; c < width; c++) fakeQuantGroup(x, t0 * width + c, count, width, bits)
  }
}

function fakeQuantGgml(x: Float32Array, type: LlamaCppCacheType): void {
  const info = blockOf(type)
  const blockType = type.toUpperCase() as BlockType
  const bytes = new Uint8Array((x.length / info.blockElements) * info.blockBytes)
  quantizeBlocks(blockType, x, x.length, bytes)
  dequantizeBlocks(blockType, bytes, x.length, x)
}

/**
 * One window's keys (after RoPE) and values, each [T, kvHeads·headDim], quantized and dequantized in
 * place as `s` stores them.
 */
export function quantizeWindowKv(
  s: KvCacheSetting,
  k: Float32Array,
  v: Float32Array,
  T: number,
  kvHeads: number,
  headDim: number,
): void {
  const width = kvHeads * headDim
  if (k.length !== T * width || v.length !== T * width)
    throw new WhittleError(
      'validation',
      null,
      `KV window of ${T}×${width} values expected, got ${k.length} and ${v.length}`,
    )
  if (s.scheme === 'token') {
    fakeQuantPerTokenHead(k, T, kvHeads, headDim, s.bits)
    fakeQuantPerTokenHead(v, T, kvHeads, headDim, s.bits)
  } else if (s.scheme === 'kivi') {
    const quantized = Math.max(0, T - s.residual)
    fakeQuantPerChannel(k, quantized, width, s.bits)
    fakeQuantPerTokenHead(v, quantized, kvHeads, headDim, s.bits)
  } else {
    // Blocks never straddle rows (the row is a whole number of blocks), so the window is one run of blocks.
    ggmlCacheLayout(s.type, kvHeads, headDim)
    fakeQuantGgml(k, s.type)
    fakeQuantGgml(v, s.type)
  }
}

/** Forward hooks that put every window's K and V through the setting. */
export function kvCacheHooks(s: KvCacheSetting): ForwardHooks {
  return { keysValues: (_layer, k, v, T, kvHeads, headDim) => quantizeWindowKv(s, k, v, T, kvHeads, headDim) }
}

/** Dimensions of the cache: one key and one value vector of head_dim per layer and kv head, per token. */
export type CacheShape = Pick<ModelArchitecture, 'layers' | 'kvHeads' | 'headDim'>

export interface KvCacheMemory {
  /** Stored bits per cached value, scales and minimums included (keys, values), ignoring any residual. */
  keyBits: number
  valueBits: number
  /** Bytes one token of context takes in the quantized cache, over a context of contextLength tokens. */
  bytesPerToken: number
  /** The same in the f16 cache. */
  baselineBytesPerToken: number
  /** baseline − quantized, per token of context. */
  savedBytesPerToken: number
  contextLength: number
  /** The whole cache for contextLength tokens: quantized, f16, and the difference. */
  bytes: number
  baselineBytes: number
  savedBytes: number
}

/** Bits one (layer, kv head) cache stores for L tokens, keys and values together. */
function headBits(s: KvCacheSetting, headDim: number, L: number): number {
  if (s.scheme === 'ggml') return 2 * L * headDim * bitsPerWeight(blockOf(s.type))
  const perVector = s.bits * headDim + GRID_OVERHEAD_BITS
  if (s.scheme === 'token') return 2 * L * perVector
  const quantized = Math.max(0, L - s.residual)
  const full = (L - quantized) * 2 * headDim * BASELINE_CACHE_BITS
  const keys = quantized * s.bits * headDim + Math.ceil(quantized / KIVI_GROUP) * headDim * GRID_OVERHEAD_BITS
  return full + keys + quantized * perVector
}

/** The memory the cache of `s` takes for this model, per token and for a context of `contextLength` tokens. */
export function kvCacheMemory(shape: CacheShape, s: KvCacheSetting, contextLength: number): KvCacheMemory {
  if (!Number.isInteger(contextLength) || contextLength < 1)
    throw new WhittleError('validation', null, `context length must be a positive integer (got ${contextLength})`)
  const heads = shape.layers * shape.kvHeads
  const hd = shape.headDim
  const bytes = (heads * headBits(s, hd, contextLength)) / 8
  const baselineBytes = (heads * 2 * contextLength * hd * BASELINE_CACHE_BITS) / 8
  const keyBits =
    s.scheme === 'ggml'
      ? bitsPerWeight(blockOf(s.type))
      : s.bits + GRID_OVERHEAD_BITS / (s.scheme === 'kivi' ? KIVI_GROUP : hd)
  const valueBits = s.scheme === 'ggml' ? keyBits : s.bits + GRID_OVERHEAD_BITS / hd
  return {
    keyBits,
    valueBits,
    bytesPerToken: bytes / contextLength,
    baselineBytesPerToken: baselineBytes / contextLength,
    savedBytesPerToken: (baselineBytes - bytes) / contextLength,
    contextLength,
    bytes,
    baselineBytes,
    savedBytes: baselineBytes - bytes,
  }
}
