// The CPU forward pass of the Llama family (llama, mistral, qwen2; GQA, RoPE in HF or GGUF layout,
// RMSNorm, SwiGLU, tied or untied lm_head) on the WASM kernels.
//
// Work is layer-major over a batch of windows: every window of the batch goes through layer i before
// any goes through layer i+1, so each layer's weights are read once per batch. Small models keep all
// weights resident; large ones hold one layer at a time. Activations are bounded by batch × seqlen.

import type { TensorRole } from '../../contract/api'
import { tensorName } from '../arch'
import { WhittleError } from '../errors'
import type { TensorEntry } from '../formats/types'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { ropeTable } from '../../../kernels/reference/rope'
import { allocTensor, loadTensor, type ArenaTensor } from './arena-tensors'
import { attention, matmul } from './parallel-ops'
import type { KernelExports } from '../../../kernels/host/exports'

const LINEARS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const
export type LinearRole = (typeof LINEARS)[number]

interface LayerWeights {
  attnNorm: ArenaTensor
  ffnNorm: ArenaTensor
  linear: Record<LinearRole, ArenaTensor>
  bias: Partial<Record<LinearRole, ArenaTensor>>
}

/** Observers see each Linear's input as it is computed (calibration capture, activation stats). */
export interface ForwardHooks {
  /** x is [M, K] f32 in kernel memory (valid only during the call). */
  linearInput?(layer: number, role: LinearRole, x: Float32Array, M: number, K: number): void
  /** Attention output [M, heads·headDim] before o_proj; may be modified in place (head ablation). */
  attentionOutput?(layer: number, att: Float32Array, M: number): void
}

/** Keep all weights resident below this many f32 bytes. */
const RESIDENT_BUDGET = 256 << 20
/** Kernel memory for one pass of activations through a block. */
const ACTIVATION_BUDGET = 192 << 20
/** Logits are computed this many bytes at a time. */
const LOGIT_CHUNK_BYTES = 64 << 20

export class LlamaForward {
  private resident = new Map<number, LayerWeights>()
  private embedTable: ArenaTensor | null = null
  private lmHead: ArenaTensor | null = null
  private finalNorm: ArenaTensor | null = null
  private readonly keepResident: boolean
  private readonly k: KernelExports

  private constructor(private readonly pool: WorkerPool, private readonly model: LoadedModel) {
    const a = model.arch
    if (a.family !== 'llama') throw new WhittleError('unsupported', model.files.path, `the forward pass does not support the ${a.family} family yet`)
    if (!(a.hiddenSize > 0 && a.heads > 0 && a.kvHeads > 0 && a.layers > 0)) {
      throw new WhittleError('config', model.files.path, 'the architecture geometry is incomplete; cannot run the model')
    }
    const f32Bytes = model.files.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1) * 4, 0)
    this.keepResident = f32Bytes <= RESIDENT_BUDGET
    this.k = pool.kernels
  }

  static async create(pool: WorkerPool, model: LoadedModel): Promise<LlamaForward> {
    const f = new LlamaForward(pool, model)
    f.finalNorm = await loadTensor(pool, f.entry(null, 'final_norm'))
    return f
  }

  get arch() {
    return this.model.arch
  }

  entry(layer: number | null, role: TensorRole): TensorEntry {
    const name = tensorName(this.model.arch, layer, role)
    if (!name) throw new WhittleError('not-found', this.model.files.path, `no ${role} tensor${layer === null ? '' : ` in layer ${layer}`}`)
    return this.model.entry(name)
  }

  private biasEntry(weight: TensorEntry): TensorEntry | null {
    if (!weight.name.endsWith('.weight')) return null
    const name = weight.name.slice(0, -'.weight'.length) + '.bias'
    return this.model.files.tensors.find((t) => t.name === name) ?? null
  }

  private async layerWeights(layer: number): Promise<LayerWeights> {
    const cached = this.resident.get(layer)
    if (cached) return cached
    const linear = {} as Record<LinearRole, ArenaTensor>
    const bias: Partial<Record<LinearRole, ArenaTensor>> = {}
    for (const role of LINEARS) {
      const e = this.entry(layer, role)
      linear[role] = await loadTensor(this.pool, e)
      const b = this.biasEntry(e)
      if (b) bias[role] = await loadTensor(this.pool, b)
    }
    const w: LayerWeights = {
      attnNorm: await loadTensor(this.pool, this.entry(layer, 'attn_norm')),
      ffnNorm: await loadTensor(this.pool, this.entry(layer, 'ffn_norm')),
      linear,
      bias,
    }
    if (this.keepResident) this.resident.set(layer, w)
    return w
  }

  private releaseLayer(layer: number, w: LayerWeights): void {
    if (this.resident.get(layer) === w) return
    for (const t of [w.attnNorm, w.ffnNorm, ...Object.values(w.linear), ...Object.values(w.bias)]) t?.free()
  }

  /** Embedding rows for the tokens, into x [M, H]. */
  private async embedTokens(tokens: Int32Array, xv: Float32Array): Promise<void> {
    const H = this.arch.hiddenSize
    const e = this.entry(null, 'embed')
    const vocab = e.shape[0]
    for (const t of tokens) if (t < 0 || t >= vocab) throw new WhittleError('validation', null, `token id ${t} outside the vocabulary (${vocab})`)
    if (e.byteLength <= RESIDENT_BUDGET / 4) {
      this.embedTable ??= await loadTensor(this.pool, e)
      const table = this.embedTable.view()
      for (let i = 0; i < tokens.length; i++) xv.set(table.subarray(tokens[i] * H, (tokens[i] + 1) * H), i * H)
      return
    }
    // Large vocabularies: read only the rows this batch uses.
    const rows = new Map<number, Float32Array>()
    for (const t of new Set(tokens)) {
      const row = await loadTensor(this.pool, e, t, 1)
      rows.set(t, row.view().slice())
      row.free()
    }
    for (let i = 0; i < tokens.length; i++) xv.set(rows.get(tokens[i])!, i * H)
  }

  private async lmHeadWeights(): Promise<{ w: ArenaTensor; temporary: boolean }> {
    if (this.lmHead) return { w: this.lmHead, temporary: false }
    const name = tensorName(this.arch, null, 'lm_head')
    const e = name ? this.model.entry(name) : this.entry(null, 'embed') // tied embeddings
    if (!name && this.embedTable) return { w: this.embedTable, temporary: false }
    const w = await loadTensor(this.pool, e)
    if (this.keepResident) this.lmHead = w
    return { w, temporary: !this.keepResident }
  }

  /** Activation bytes one token needs inside a block (x, h, q, k, v, attn, o, gate, up), f32. */
  bytesPerToken(): number {
    const a = this.arch
    return 4 * (4 * a.hiddenSize + 2 * a.heads * a.headDim + 2 * a.kvHeads * a.headDim + 2 * a.intermediateSize)
  }

  /** Windows that fit the activation budget in one pass through a block. */
  windowsPerPass(T: number): number {
    return Math.max(1, Math.floor(ACTIVATION_BUDGET / (this.bytesPerToken() * T)))
  }

  /** Embeddings of B windows of T tokens, as hidden states [B·T, H] in JS memory. */
  async embed(windows: Int32Array[]): Promise<Float32Array> {
    const T = windows[0]?.length ?? 0
    if (windows.some((w) => w.length !== T) || T < 1) throw new WhittleError('validation', null, 'windows must share one non-zero length')
    const tokens = new Int32Array(windows.length * T)
    windows.forEach((w, i) => tokens.set(w, i * T))
    const H = this.arch.hiddenSize
    const hidden = new Float32Array(tokens.length * H)
    await this.embedTokens(tokens, hidden)
    return hidden
  }

  /**
   * Runs decoder block `layer` over hidden states [B·T, H] in place, `windowsPerPass` windows at a time
   * through kernel memory. Hooks see every Linear's input.
   */
  async block(layer: number, hidden: Float32Array, T: number, hooks?: ForwardHooks): Promise<void> {
    const a = this.arch
    const H = a.hiddenSize, nH = a.heads, nKV = a.kvHeads, hd = a.headDim, F = a.intermediateSize
    const qDim = nH * hd, kvDim = nKV * hd
    const eps = a.normEps ?? 1e-5
    const B = hidden.length / (T * H)
    const perPass = Math.min(B, this.windowsPerPass(T))
    const pool = this.pool
    const k = this.k
    const w = await this.layerWeights(layer)
    const bufs: ArenaTensor[] = []
    const buf = (n: number): ArenaTensor => {
      const t = allocTensor(pool, n)
      bufs.push(t)
      return t
    }
    try {
      const Mmax = perPass * T
      const x = buf(Mmax * H), h = buf(Mmax * H), q = buf(Mmax * qDim), kk = buf(Mmax * kvDim), v = buf(Mmax * kvDim)
      const att = buf(Mmax * qDim), o = buf(Mmax * H), g = buf(Mmax * F), u = buf(Mmax * F)
      const scratch = buf(Math.max(1, pool.threads) * T)
      const table = ropeTable(T, hd, a.ropeTheta ?? 10000)
      const cos = buf(table.cos.length), sin = buf(table.sin.length)
      cos.view().set(table.cos)
      sin.view().set(table.sin)
      const rope = a.ropeLayout === 'gguf' ? k.rope_interleaved.bind(k) : k.rope_half.bind(k)
      const bias = (r: LinearRole): number | undefined => w.bias[r]?.ptr
      for (let b0 = 0; b0 < B; b0 += perPass) {
        const nb = Math.min(perPass, B - b0)
        const M = nb * T
        const observe = (role: LinearRole, src: ArenaTensor, K: number): void => {
          hooks?.linearInput?.(layer, role, src.view().subarray(0, M * K), M, K)
        }
        x.view().set(hidden.subarray(b0 * T * H, (b0 + nb) * T * H))
        k.rmsnorm(x.ptr, w.attnNorm.ptr, h.ptr, M, H, eps)
        for (const r of ['q', 'k', 'v'] as const) observe(r, h, H)
        await Promise.all([
          matmul(pool, h.ptr, w.linear.q.ptr, q.ptr, M, H, qDim, bias('q')),
          matmul(pool, h.ptr, w.linear.k.ptr, kk.ptr, M, H, kvDim, bias('k')),
          matmul(pool, h.ptr, w.linear.v.ptr, v.ptr, M, H, kvDim, bias('v')),
        ])
        for (let b = 0; b < nb; b++) {
          rope(q.at(b * T * qDim), cos.ptr, sin.ptr, T, nH, hd)
          rope(kk.at(b * T * kvDim), cos.ptr, sin.ptr, T, nKV, hd)
          await attention(pool, q.at(b * T * qDim), kk.at(b * T * kvDim), v.at(b * T * kvDim), att.at(b * T * qDim),
            (part) => scratch.at(part * T), T, nH, nKV, hd)
        }
        hooks?.attentionOutput?.(layer, att.view().subarray(0, M * qDim), M)
        observe('o', att, qDim)
        await matmul(pool, att.ptr, w.linear.o.ptr, o.ptr, M, qDim, H, bias('o'))
        k.add_inplace(x.ptr, o.ptr, M * H)
        k.rmsnorm(x.ptr, w.ffnNorm.ptr, h.ptr, M, H, eps)
        observe('gate', h, H)
        observe('up', h, H)
        await Promise.all([
          matmul(pool, h.ptr, w.linear.gate.ptr, g.ptr, M, H, F, bias('gate')),
          matmul(pool, h.ptr, w.linear.up.ptr, u.ptr, M, H, F, bias('up')),
        ])
        k.silu_mul(g.ptr, u.ptr, g.ptr, M * F)
        observe('down', g, F)
        await matmul(pool, g.ptr, w.linear.down.ptr, o.ptr, M, F, H, bias('down'))
        k.add_inplace(x.ptr, o.ptr, M * H)
        hidden.set(x.view().subarray(0, M * H), b0 * T * H)
      }
    } finally {
      for (const t of bufs) t.free()
      this.releaseLayer(layer, w)
    }
  }

  /**
   * Runs `windows` (each a full sequence starting at position 0) and returns, per window, the NLL of each
   * next-token prediction (length T−1).
   */
  async windowNll(windows: Int32Array[], options: { signal?: AbortSignal; hooks?: ForwardHooks; onLayer?: (layer: number) => void } = {}): Promise<Float64Array[]> {
    const T = windows[0]?.length ?? 0
    if (T < 2) throw new WhittleError('validation', null, 'windows must be at least 2 tokens long')
    const hidden = await this.embed(windows)
    for (let layer = 0; layer < this.arch.layers; layer++) {
      if (options.signal?.aborted) throw new WhittleError('cancelled', null, 'cancelled by the user')
      await this.block(layer, hidden, T, options.hooks)
      options.onLayer?.(layer)
    }
    return this.nll(hidden, windows)
  }

  /** Final norm, lm_head and per-token NLL of the next token, per window. */
  async nll(hidden: Float32Array, windows: Int32Array[]): Promise<Float64Array[]> {
    const T = windows[0].length
    const H = this.arch.hiddenSize
    const M = windows.length * T
    const x = allocTensor(this.pool, M * H)
    const h = allocTensor(this.pool, M * H)
    try {
      x.view().set(hidden)
      this.k.rmsnorm(x.ptr, this.finalNorm!.ptr, h.ptr, M, H, this.arch.normEps ?? 1e-5)
      return await this.nllFromHidden(h, windows, T)
    } finally {
      x.free()
      h.free()
    }
  }

  private async nllFromHidden(h: ArenaTensor, windows: Int32Array[], T: number): Promise<Float64Array[]> {
    const H = this.arch.hiddenSize
    const { w: head, temporary } = await this.lmHeadWeights()
    const V = head.length / H
    const rowsPerChunk = Math.max(1, Math.min(T, Math.floor(LOGIT_CHUNK_BYTES / (V * 4))))
    const logits = allocTensor(this.pool, rowsPerChunk * V)
    const targets = this.pool.arena.alloc(rowsPerChunk * 4)
    const nll = this.pool.arena.alloc(rowsPerChunk * 8)
    try {
      const out: Float64Array[] = []
      for (let b = 0; b < windows.length; b++) {
        const result = new Float64Array(T - 1)
        for (let t0 = 0; t0 < T - 1; t0 += rowsPerChunk) {
          const n = Math.min(rowsPerChunk, T - 1 - t0)
          await matmul(this.pool, h.at((b * T + t0) * H), head.ptr, logits.ptr, n, H, V)
          const tg = new Int32Array(this.pool.memory.buffer, targets.ptr, n)
          tg.set(windows[b].subarray(t0 + 1, t0 + 1 + n))
          this.k.log_softmax_nll(logits.ptr, targets.ptr, nll.ptr, n, V)
          result.set(this.pool.arena.f64(nll, 0, n), t0)
        }
        out.push(result)
      }
      return out
    } finally {
      logits.free()
      this.pool.arena.release(targets)
      this.pool.arena.release(nll)
      if (temporary) head.free()
    }
  }

  close(): void {
    for (const [layer, w] of this.resident) {
      this.resident.delete(layer)
      this.releaseLayer(layer, w)
    }
    this.embedTable?.free()
    if (this.lmHead && this.lmHead !== this.embedTable) this.lmHead.free()
    this.finalNorm?.free()
    this.embedTable = this.lmHead = this.finalNorm = null
  }
}
