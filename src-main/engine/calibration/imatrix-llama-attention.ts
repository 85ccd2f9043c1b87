// llama.cpp's attention, replayed in plain TS so an importance matrix can match llama-imatrix's to 1e-4.
// llama-imatrix runs the model with an f16 KV cache and (on CPU, flash_attn auto) ggml's flash-attention
// kernel: K, V and Q rounded to f16, scores in f32, an online softmax whose running V sum is kept in f16
// (rounded after every key), divided by the softmax sum at the end. Whittle's own attention is f32
// throughout, which moves the inputs of attn_output and everything after by up to ~5e-4 relative.
// This recomputes q/k/v from the block's attention input (f64 dot products, rounded to f32), applies
// ggml's RoPE (f32 angles stepped as ggml steps them), and replaces the forward pass's attention output.
// It is slow (scalar TS, O(T²) per head): meant for small models and for checking against llama.cpp.

import type { ModelArchitecture } from '../arch/types'
import { WhittleError } from '../errors'
import type { LoadedModel } from '../model/loaded-model'
import { roundToF16 } from '../numerics/float-encodings'
import { decodeTensorF32 } from '../pool/decode-tensor'
import type { WorkerPool } from '../pool/worker-pool'

const f = Math.fround
const bitsF32 = new Float32Array(1)
const bitsU32 = new Uint32Array(bitsF32.buffer)

/**
 * x (an f32) rounded to the nearest f16, ties to even, as an f32: for f16's normal range by clearing the 13
 * low mantissa bits with rounding, elsewhere (subnormals, overflow, NaN) through the full conversion. This
 * runs once per element per key in the attention loop, where the general conversion would dominate.
 */
function f16(x: number): number {
  bitsF32[0] = x
  const u = bitsU32[0]
  const e = (u >>> 23) & 0xff
  if (e < 113 || e > 141) return roundToF16(x) // below 2^-14 or at/above 2^15: the careful path
  bitsU32[0] = (u + 0xfff + ((u >>> 13) & 1)) & 0xffffe000
  return bitsF32[0]
}

interface Projection {
  w: Float32Array
  bias: Float32Array | null
  out: number
}

/** The block's q/k/v weights (and biases) as f32, read once per layer. */
async function projections(
  pool: WorkerPool,
  model: LoadedModel,
  layer: number,
): Promise<Record<'q' | 'k' | 'v', Projection>> {
  const find = (role: string, bias: boolean): string | undefined =>
    Object.entries(model.arch.places).find(([, p]) => p.layer === layer && p.role === role && !!p.bias === bias)?.[0]
  const out = {} as Record<'q' | 'k' | 'v', Projection>
  for (const role of ['q', 'k', 'v'] as const) {
    const name = find(role, false)
    if (!name)
      throw new WhittleError(
        'unsupported',
        model.files.path,
        `layer ${layer} has no separate ${role} projection; llama.cpp's attention can only be replayed for Llama-family models`,
      )
    const entry = model.entry(name)
    const b = find(role, true)
    out[role] = {
      w: await decodeTensorF32(pool, entry),
      bias: b ? await decodeTensorF32(pool, model.entry(b)) : null,
      out: entry.shape[0],
    }
  }
  return out
}

function project(x: Float32Array, M: number, K: number, p: Projection): Float32Array {
  const { w, bias, out } = p
  const y = new Float32Array(M * out)
  for (let m = 0; m < M; m++) {
    const xr = m * K
    for (let n = 0; n < out; n++) {
      const wr = n * K
      let s = 0
      for (let k = 0; k < K; k++) s += x[xr + k] * w[wr + k]
      y[m * out + n] = bias ? f(f(s) + bias[n]) : s
    }
  }
  return y
}

/** ggml's RoPE cache: θ starts at the position and is multiplied by base^(−2/d) in f32 for each pair. */
function ropeTable(T: number, hd: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const half = hd / 2
  const scale = f(Math.pow(base, -2 / hd))
  const cos = new Float32Array(T * half),
    sin = new Float32Array(T * half)
  for (let p = 0; p < T; p++) {
    let theta = f(p)
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = f(Math.cos(theta))
      sin[p * half + i] = f(Math.sin(theta))
      theta = f(theta * scale)
    }
  }
  return { cos, sin }
}

export class LlamaCppAttention {
  private readonly weights = new Map<number, Record<'q' | 'k' | 'v', Projection>>()
  private readonly table: { cos: Float32Array; sin: Float32Array }
  private input: Float32Array | null = null

  private constructor(
    private readonly pool: WorkerPool,
    private readonly model: LoadedModel,
    private readonly T: number,
  ) {
    const a = model.arch
    this.table = ropeTable(T, a.headDim, a.ropeTheta ?? 10000)
  }

  static create(pool: WorkerPool, model: LoadedModel, T: number): LlamaCppAttention {
    const a: ModelArchitecture = model.arch
    if (a.family !== 'llama' || a.ropeLayout === 'none')
      throw new WhittleError(
        'unsupported',
        model.files.path,
        "llama.cpp's attention can only be replayed for Llama-family models",
      )
    return new LlamaCppAttention(pool, model, T)
  }

  /** Loads a layer's projections before its block runs (the hooks themselves are synchronous). */
  async prepare(layer: number): Promise<void> {
    this.weights.clear()
    this.weights.set(layer, await projections(this.pool, this.model, layer))
  }

  /** The block's attention input (the normed hidden state q/k/v read), [M, hidden]. */
  keepInput(x: Float32Array): void {
    this.input = x.slice()
  }

  private rope(x: Float32Array, M: number, heads: number): void {
    const hd = this.model.arch.headDim,
      half = hd / 2
    // 'gguf' rows are in llama.cpp's interleaved order (pairs 2i, 2i+1); 'hf' rows pair i with i + d/2.
    const interleaved = this.model.arch.ropeLayout === 'gguf'
    const { cos, sin } = this.table
    for (let m = 0; m < M; m++) {
      const p = m % this.T
      for (let h = 0; h < heads; h++) {
        const base = (m * heads + h) * hd
        for (let i = 0; i < half; i++) {
          const i0 = base + (interleaved ? 2 * i : i),
            i1 = i0 + (interleaved ? 1 : half)
          const c = cos[p * half + i],
            s = sin[p * half + i]
          const x0 = x[i0],
            x1 = x[i1]
          x[i0] = f(f(x0 * c) - f(x1 * s))
          x[i1] = f(f(x0 * s) + f(x1 * c))
        }
      }
    }
  }

  /** Replaces `att` [M, heads · headDim] with what llama.cpp's CPU flash attention computes. */
  replace(layer: number, att: Float32Array, M: number): void {
    const w = this.weights.get(layer)
    const x = this.input
    if (!w || !x) throw new WhittleError('kernel', null, `llama.cpp attention replay: layer ${layer} was not prepared`)
    const a = this.model.arch
    const nH = a.heads,
      nKV = a.kvHeads,
      hd = a.headDim,
      H = x.length / M
    const q = project(x, M, H, w.q),
      k = project(x, M, H, w.k),
      v = project(x, M, H, w.v)
    this.rope(q, M, nH)
    this.rope(k, M, nKV)
    // The KV cache holds f16; the kernel converts Q to f16 for its dot products with K.
    for (let i = 0; i < k.length; i++) {
      k[i] = f16(k[i])
      v[i] = f16(v[i])
    }
    for (let i = 0; i < q.length; i++) q[i] = f16(q[i])
    const scale = f(1 / Math.sqrt(hd))
    const group = nH / nKV
    const acc = new Float32Array(hd)
    for (let m = 0; m < M; m++) {
      const first = m - (m % this.T)
      for (let h = 0; h < nH; h++) {
        const qo = (m * nH + h) * hd
        const kvo = Math.floor(h / group) * hd
        let max = -Infinity,
          sum = 0
        acc.fill(0)
        for (let j = first; j <= m; j++) {
          const ko = j * nKV * hd + kvo
          let dot = 0
          for (let d = 0; d < hd; d++) dot += q[qo + d] * k[ko + d]
          const s = f(f(dot) * scale)
          let ms = 1,
            vs = 1
          if (s > max) {
            ms = f(Math.exp(max - s))
            max = s
            for (let d = 0; d < hd; d++) acc[d] = f16(f(acc[d] * ms))
          } else {
            vs = f(Math.exp(f(s - max)))
          }
          for (let d = 0; d < hd; d++) acc[d] = f16(f(acc[d] + v[ko + d] * vs))
          sum = f(f(sum * ms) + vs)
        }
        const inv = f(1 / sum)
        for (let d = 0; d < hd; d++) att[qo + d] = f(acc[d] * inv)
      }
    }
    this.input = null
  }
}
