// What every family's forward pass shares: weight residency, the token-embedding gather, the layer-major
// loop over a batch of windows, and the output head with its per-token NLL. A family supplies how to load
// one layer's weights, how one pass of windows goes through a block, and its final norm.
//
// Work is layer-major over a batch of windows: every window of the batch goes through layer i before
// any goes through layer i+1, so each layer's weights are read once per batch. Small models keep all
// weights resident; large ones hold one layer at a time. Activations are bounded by batch × seqlen.

import type { Family, ModelArchitecture } from '../arch/types'
import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { KernelExports } from '../../../kernels/host/exports'
import { allocTensor, loadTensor, type ArenaTensor } from '../pool/arena-tensors'
import { BlockContext, TensorScope } from './block-context'
import type { CausalLM, ForwardHooks, WindowNllOptions } from './causal-lm'
import { logitsNll } from './parallel-ops'
import { packRows, unpackRows, type StreamWidths } from './sliced-stream'
import { WeightLoader } from './weight-loader'

/** Keep all weights resident below this many f32 bytes. */
const RESIDENT_BUDGET = 256 << 20
/** Kernel memory for one pass of activations through a block. */
const ACTIVATION_BUDGET = 192 << 20
/**
 * Hidden states [B·T, H] of one batch of windows (held in JS memory between blocks, and twice in kernel
 * memory at the output head) when layers are loaded per batch: larger batches load each layer less often.
 */
const BATCH_HIDDEN_BUDGET = 64 << 20
/** Logits are computed this many bytes at a time. */
const LOGIT_CHUNK_BYTES = 64 << 20

/** One pass of nb windows (x: [nb·T, H] in kernel memory) through a block, updating x in place. */
export type BlockPass = (x: ArenaTensor, nb: number) => Promise<void>

interface HeldLayer<W> {
  weights: W
  loader: WeightLoader
}

/**
 * The next-token targets of rows [r0, r0 + out.length) of windows laid end to end (row r is token r % T of
 * window ⌊r / T⌋): the token after it, or −1 for a window's last row, which predicts nothing.
 */
export function nextTokenTargets(windows: Int32Array[], r0: number, out: Int32Array): void {
  const T = windows[0].length
  for (let i = 0; i < out.length; i++) {
    const b = Math.floor((r0 + i) / T),
      t = (r0 + i) % T
    out[i] = t === T - 1 ? -1 : windows[b][t + 1]
  }
}

export abstract class DecoderForward<W> implements CausalLM {
  private readonly resident = new Map<number, HeldLayer<W>>()
  private embedTable: ArenaTensor | null = null
  private lmHead: ArenaTensor | null = null
  /** Weights outside the blocks (final norm, projections), held until close(). */
  protected readonly globals: WeightLoader
  protected readonly keepResident: boolean
  protected readonly k: KernelExports

  protected constructor(
    protected readonly pool: WorkerPool,
    protected readonly model: LoadedModel,
    family: Family,
  ) {
    const a = model.arch
    if (a.family !== family)
      throw new WhittleError(
        'unsupported',
        model.files.path,
        `the ${family} forward pass cannot run a ${a.family} model`,
      )
    if (!(
      a.hiddenSize > 0 &&
      a.heads > 0 &&
      a.kvHeads > 0 &&
      a.headDim > 0 &&
      a.layers > 0 &&
      a.intermediateSize > 0
    )) {
      throw new WhittleError(
        'config',
        model.files.path,
        'the architecture geometry is incomplete; cannot run the model',
      )
    }
    if (a.heads % a.kvHeads !== 0) {
      throw new WhittleError(
        'config',
        model.files.path,
        `${a.heads} attention heads cannot share ${a.kvHeads} key/value heads evenly`,
      )
    }
    const f32Bytes = model.files.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1) * 4, 0)
    this.keepResident = f32Bytes <= RESIDENT_BUDGET
    this.k = pool.kernels
    this.globals = new WeightLoader(pool, model)
  }

  /** Runs `init` on a freshly constructed forward pass, freeing what it loaded if it fails. */
  protected static async opened<F extends DecoderForward<unknown>>(f: F): Promise<F> {
    try {
      await f.init()
      return f
    } catch (e) {
      f.close()
      throw e
    }
  }

  get arch(): ModelArchitecture {
    return this.model.arch
  }

  /** Loads what lives outside the blocks into `globals`. */
  protected abstract init(): Promise<void>
  /** Loads one decoder layer's weights through `loader` (which owns and later frees them). */
  protected abstract loadLayer(layer: number, loader: WeightLoader): Promise<W>
  /** Allocates a block's buffers in `ctx` and returns the step that runs one pass of windows through it. */
  protected abstract blockPass(ctx: BlockContext, weights: W): BlockPass
  /** The input of the output head for M rows of final hidden states x: [M, width] in kernel memory. */
  protected abstract headInput(
    x: ArenaTensor,
    M: number,
    scope: TensorScope,
  ): Promise<{ h: ArenaTensor; width: number }>
  abstract bytesPerToken(): number

  /**
   * Where a block's residual is narrower than the hidden size (SliceGPT): its width in and out. Hidden
   * states between blocks stay [rows, hidden] with zeros beyond the width; null (the default) runs the
   * block on whole rows.
   */
  protected streamWidths(_layer: number): StreamWidths | null {
    return null
  }

  /**
   * Whether this family's block awaits BlockContext.afterHeldReads() before it writes an observed buffer
   * again (within a pass; block() does at the end of each), so hooks may read its Linears' inputs in place.
   */
  protected holdsObservedInputs(): boolean {
    return false
  }

  private async layerWeights(layer: number): Promise<HeldLayer<W>> {
    const cached = this.resident.get(layer)
    if (cached) return cached
    const loader = new WeightLoader(this.pool, this.model)
    let weights: W
    try {
      weights = await this.loadLayer(layer, loader)
    } catch (e) {
      loader.free()
      throw e
    }
    const held = { weights, loader }
    if (this.keepResident) this.resident.set(layer, held)
    return held
  }

  private releaseLayer(layer: number, held: HeldLayer<W>): void {
    if (this.resident.get(layer) !== held) held.loader.free()
  }

  windowsPerPass(T: number): number {
    return Math.max(1, Math.floor(ACTIVATION_BUDGET / (this.bytesPerToken() * T)))
  }

  windowsPerBatch(T: number): number {
    const perPass = this.windowsPerPass(T)
    if (this.keepResident) return perPass
    return Math.max(perPass, Math.floor(BATCH_HIDDEN_BUDGET / (4 * this.arch.hiddenSize * T)))
  }

  /** Embeddings of B windows of T tokens, as hidden states [B·T, H] in JS memory. */
  async embed(windows: Int32Array[]): Promise<Float32Array> {
    const T = windows[0]?.length ?? 0
    if (windows.some((w) => w.length !== T) || T < 1)
      throw new WhittleError('validation', null, 'windows must share one non-zero length')
    const tokens = new Int32Array(windows.length * T)
    windows.forEach((w, i) => tokens.set(w, i * T))
    return this.embedTokens(tokens, T)
  }

  /** Token embeddings [n, H]; families with learned positions or an input projection add them. */
  protected embedTokens(tokens: Int32Array, _T: number): Promise<Float32Array> {
    return this.tokenRows(tokens, this.arch.hiddenSize)
  }

  /** Rows of the token-embedding table (`width` wide) for the tokens, into JS memory [n, width]. */
  protected async tokenRows(tokens: Int32Array, width: number): Promise<Float32Array> {
    const e = this.globals.entry(null, 'embed')
    const vocab = e.shape[0]
    this.globals.requireShape(e, [vocab, width])
    for (const t of tokens)
      if (t < 0 || t >= vocab)
        throw new WhittleError('validation', null, `token id ${t} outside the vocabulary (${vocab})`)
    const out = new Float32Array(tokens.length * width)
    if (e.byteLength <= RESIDENT_BUDGET / 4) {
      this.embedTable ??= await loadTensor(this.pool, e)
      const table = this.embedTable.view()
      for (let i = 0; i < tokens.length; i++)
        out.set(table.subarray(tokens[i] * width, (tokens[i] + 1) * width), i * width)
      return out
    }
    // Large vocabularies: read only the rows this batch uses.
    const rows = new Map<number, Float32Array>()
    for (const t of new Set(tokens)) {
      const row = await loadTensor(this.pool, e, t, 1)
      rows.set(t, row.view().slice())
      row.free()
    }
    for (let i = 0; i < tokens.length; i++) out.set(rows.get(tokens[i])!, i * width)
    return out
  }

  /**
   * Adds rows [offset, offset + T) of a learned position table [positions, H] to every window of
   * hidden [B·T, H] (each window starts at position 0).
   */
  protected async addLearnedPositions(hidden: Float32Array, T: number, offset: number): Promise<void> {
    const H = this.arch.hiddenSize
    const e = this.globals.entry(null, 'pos_embed')
    const available = e.shape[0] - offset
    this.globals.requireShape(e, [e.shape[0], H])
    if (T > available) {
      throw new WhittleError(
        'validation',
        this.model.files.path,
        `windows of ${T} tokens exceed the model's ${Math.max(0, available)} learned positions`,
      )
    }
    const table = await loadTensor(this.pool, e, offset, T)
    try {
      const pos = table.view()
      for (let row = 0; row < hidden.length / H; row++) {
        const p = (row % T) * H
        for (let i = 0; i < H; i++) hidden[row * H + i] += pos[p + i]
      }
    } finally {
      table.free()
    }
  }

  /**
   * Block `layer`'s pass for up to perPass windows of T tokens, handed to `use`; its buffers and (where not
   * resident) weights are freed once `use` is done and every read held by a hook has ended.
   */
  private async withBlockPass(
    layer: number,
    T: number,
    perPass: number,
    hooks: ForwardHooks | undefined,
    use: (pass: BlockPass, ctx: BlockContext) => Promise<void>,
  ): Promise<void> {
    const held = await this.layerWeights(layer)
    const activations = this.model.runtime?.activations ?? null
    // Post-LN blocks feed the residual itself to a Linear, so in-place activation quantization is only
    // safe where every Linear reads its own buffer (the Llama block).
    if (activations && this.arch.family !== 'llama')
      throw new WhittleError(
        'unsupported',
        this.model.files.path,
        `W8A8 activation quantization is implemented for the Llama family only, not ${this.arch.family}`,
      )
    const ctx = new BlockContext(this.pool, layer, T, perPass * T, hooks, activations, this.holdsObservedInputs())
    try {
      await use(this.blockPass(ctx, held.weights), ctx)
    } finally {
      await ctx.settleHeldReads()
      ctx.free()
      this.releaseLayer(layer, held)
    }
  }

  /**
   * Runs decoder block `layer` over hidden states [B·T, H] in place, `windowsPerPass` windows at a time
   * through kernel memory. Hooks see every Linear's input; with hooks.inputsOnly, `hidden` is only read.
   */
  async block(layer: number, hidden: Float32Array, T: number, hooks?: ForwardHooks): Promise<void> {
    const H = this.arch.hiddenSize
    if (!(Number.isInteger(layer) && layer >= 0 && layer < this.arch.layers))
      throw new WhittleError('validation', null, `no decoder layer ${layer}`)
    if (!(T > 0) || hidden.length % (T * H) !== 0)
      throw new WhittleError(
        'validation',
        null,
        `hidden states of ${hidden.length} values are not whole windows of ${T}×${H}`,
      )
    const B = hidden.length / (T * H)
    const perPass = Math.min(B, this.windowsPerPass(T))
    await this.withBlockPass(layer, T, perPass, hooks, async (pass, ctx) => {
      const widths = this.streamWidths(layer)
      const x = ctx.rows(widths ? Math.max(widths.input, widths.output) : H)
      for (let b0 = 0; b0 < B; b0 += perPass) {
        const nb = Math.min(perPass, B - b0)
        if (widths) packRows(hidden, b0 * T, nb * T, H, x.view(), widths.input)
        else x.view().set(hidden.subarray(b0 * T * H, (b0 + nb) * T * H))
        await pass(x, nb)
        // The next pass rewrites every buffer a hook may still be reading.
        await ctx.afterHeldReads()
        if (hooks?.inputsOnly) continue
        if (widths) unpackRows(x.view(), widths.output, hidden, b0 * T, nb * T, H)
        else hidden.set(x.view().subarray(0, nb * T * H), b0 * T * H)
      }
    })
  }

  /**
   * Whether B windows of T tokens can stay in kernel memory from the embedding to the output head: all
   * weights resident, the windows one pass, every block full width. Then no layer copies the hidden states
   * out to JS memory and back, main-thread work that left the workers idle (7% of stories260K's
   * perplexity on 2 workers).
   */
  private staysInKernelMemory(B: number, T: number, hooks: ForwardHooks | undefined): boolean {
    if (!this.keepResident || hooks?.inputsOnly || B > this.windowsPerPass(T)) return false
    for (let layer = 0; layer < this.arch.layers; layer++) if (this.streamWidths(layer)) return false
    return true
  }

  /**
   * Runs `windows` (each a full sequence starting at position 0) and returns, per window, the NLL of each
   * next-token prediction (length T−1).
   */
  async windowNll(windows: Int32Array[], options: WindowNllOptions = {}): Promise<Float64Array[]> {
    const T = windows[0]?.length ?? 0
    if (T < 2) throw new WhittleError('validation', null, 'windows must be at least 2 tokens long')
    const hidden = await this.embed(windows)
    if (this.staysInKernelMemory(windows.length, T, options.hooks)) {
      const scope = new TensorScope(this.pool)
      try {
        const x = scope.alloc(hidden.length)
        x.view().set(hidden)
        for (let layer = 0; layer < this.arch.layers; layer++) {
          throwIfCancelled(options.signal)
          await this.withBlockPass(layer, T, windows.length, options.hooks, async (pass, ctx) => {
            await pass(x, windows.length)
            await ctx.afterHeldReads()
          })
          options.onLayer?.(layer)
        }
        return await this.nllOf(x, windows, scope)
      } finally {
        scope.free()
      }
    }
    for (let layer = 0; layer < this.arch.layers; layer++) {
      throwIfCancelled(options.signal)
      await this.block(layer, hidden, T, options.hooks)
      options.onLayer?.(layer)
    }
    return this.nll(hidden, windows)
  }

  /** Final norm, output head and per-token NLL of the next token, per window. */
  async nll(hidden: Float32Array, windows: Int32Array[]): Promise<Float64Array[]> {
    const T = windows[0]?.length ?? 0
    const H = this.arch.hiddenSize
    const M = windows.length * T
    if (T < 2 || hidden.length !== M * H)
      throw new WhittleError(
        'validation',
        null,
        `hidden states of ${hidden.length} values do not match ${windows.length} windows of ${T} tokens`,
      )
    const scope = new TensorScope(this.pool)
    try {
      const x = scope.alloc(M * H)
      x.view().set(hidden)
      return await this.nllOf(x, windows, scope)
    } finally {
      scope.free()
    }
  }

  /** nll() of final hidden states x [windows·T, H] already in kernel memory; scratch goes in `scope`. */
  private async nllOf(x: ArenaTensor, windows: Int32Array[], scope: TensorScope): Promise<Float64Array[]> {
    const T = windows[0].length
    const { h, width } = await this.headInput(x, windows.length * T, scope)
    return this.nllFromHidden(h, width, windows, T)
  }

  private async lmHeadWeights(): Promise<{ w: ArenaTensor; temporary: boolean }> {
    if (this.lmHead) return { w: this.lmHead, temporary: false }
    const own = this.globals.optionalEntry(null, 'lm_head')
    if (!own && this.embedTable) return { w: this.embedTable, temporary: false } // tied embeddings
    const w = await loadTensor(this.pool, own ?? this.globals.entry(null, 'embed'))
    if (this.keepResident) this.lmHead = w
    return { w, temporary: !this.keepResident }
  }

  private async nllFromHidden(
    h: ArenaTensor,
    width: number,
    windows: Int32Array[],
    T: number,
  ): Promise<Float64Array[]> {
    const { w: head, temporary } = await this.lmHeadWeights()
    const V = head.length / width
    if (!Number.isInteger(V)) {
      if (temporary) head.free()
      throw new WhittleError(
        'format',
        this.model.files.path,
        `the output head holds ${head.length} values, not whole rows of ${width}`,
      )
    }
    // Rows of every window at once, chunk by chunk, so the workers split long row ranges rather than
    // meet at a barrier per window: a window's last row predicts nothing (target −1, which the kernel
    // scores 0 and which is not kept).
    const M = windows.length * T
    const rowsPerChunk = Math.max(1, Math.min(M, Math.floor(LOGIT_CHUNK_BYTES / (V * 4))))
    const logits = allocTensor(this.pool, rowsPerChunk * V)
    const targets = this.pool.arena.alloc(rowsPerChunk * 4)
    const nll = this.pool.arena.alloc(rowsPerChunk * 8)
    try {
      const out = windows.map(() => new Float64Array(T - 1))
      for (let r0 = 0; r0 < M; r0 += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, M - r0)
        nextTokenTargets(windows, r0, new Int32Array(this.pool.memory.buffer, targets.ptr, n))
        await logitsNll(this.pool, h.at(r0 * width), head.ptr, logits.ptr, targets.ptr, nll.ptr, n, width, V)
        const rowNll = this.pool.arena.f64(nll, 0, n)
        for (let i = 0; i < n; i++) {
          const t = (r0 + i) % T
          if (t < T - 1) out[Math.floor((r0 + i) / T)][t] = rowNll[i]
        }
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
    for (const [layer, held] of this.resident) {
      this.resident.delete(layer)
      held.loader.free()
    }
    this.embedTable?.free()
    if (this.lmHead && this.lmHead !== this.embedTable) this.lmHead.free()
    this.embedTable = this.lmHead = null
    this.globals.free()
  }
}
