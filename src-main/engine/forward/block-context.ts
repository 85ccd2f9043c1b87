// What one call of a decoder block works with: kernel-memory buffers that live as long as the call,
// the hooks, and the few composite steps every family shares (a biased Linear, causal attention over
// each window with an optional rotary step, a fused q/k/v projection read as three slices).

import type { KernelCall, WorkerPool } from '../pool/worker-pool'
import { allocTensor, type ArenaTensor } from '../pool/arena-tensors'
import { RECORDING_ROLES, type ForwardHooks, type HeldInput, type LinearRole } from './causal-lm'
import { attention, attentionCall, matmul, rmsnorm, siluMul } from './parallel-ops'
import { attentionScratch } from '../../../kernels/reference/attention'
import { fakeQuantActivations, fakeQuantPerToken } from './activation-quant'
import type { ActivationScheme } from '../model/loaded-model'

/** A weight in kernel memory with its optional bias (a Linear [out, in] + [out], or a norm's scale + shift). */
export interface Affine {
  w: ArenaTensor
  b: ArenaTensor | undefined
}

/** Kernel-memory tensors freed together. */
export class TensorScope {
  private readonly held: ArenaTensor[] = []

  constructor(protected readonly pool: WorkerPool) {}

  alloc(length: number): ArenaTensor {
    return this.adopt(allocTensor(this.pool, length))
  }

  adopt(t: ArenaTensor): ArenaTensor {
    this.held.push(t)
    return t
  }

  /** Frees `t` now (a staging copy replaced by its rearranged version). */
  drop(t: ArenaTensor): void {
    const i = this.held.indexOf(t)
    if (i >= 0) this.held.splice(i, 1)
    t.free()
  }

  free(): void {
    for (const t of this.held.splice(0)) t.free()
  }
}

/**
 * Rotates q or k of one window in place: x is [T, nHeads·headDim] at byte address `ptr`. Where the
 * rotation is kernel calls alone, `calls` gives them, so that a worker can rotate a window just before
 * attending over it.
 */
export type RotateWindow = ((ptr: number, nHeads: number) => void) & {
  calls?: (ptr: number, nHeads: number) => KernelCall[]
}

export class BlockContext extends TensorScope {
  private attentionScratch: ArenaTensor | null = null
  /** Reads of observed buffers that hooks are still doing (HeldInput): awaited before those buffers are written. */
  private heldReads: Promise<unknown>[] = []

  constructor(
    pool: WorkerPool,
    readonly layer: number,
    /** Tokens per window. */
    readonly T: number,
    /** Rows of the largest pass (windows per pass × T). */
    readonly Mmax: number,
    private readonly hooks: ForwardHooks | undefined,
    /** W8A8 models: the run-time activation quantization at every Linear input (int8: at the q/k/v outputs too). */
    private readonly activations: ActivationScheme | null = null,
    /**
     * Whether the block's code calls afterHeldReads() before it writes an observed buffer again, so hooks
     * may be offered a HeldInput. Not with W8A8: observe() quantizes the buffer in place right after the hook.
     */
    private readonly holdsInputs = false,
  ) {
    super(pool)
  }

  /**
   * Whether nothing changes the block's inside and the only hooks are linearInput and inputsOnly (no
   * activation quantization): a block may then run whole windows per worker (llama-window-lanes.ts).
   */
  get watchesOnlyInputs(): boolean {
    const h = this.hooks
    return !this.activations && !(h?.attentionOutput || h?.keysValues || h?.slicedResidual)
  }

  /** watchesOnlyInputs, and no linearInput hook either: nothing watches the block's inside. */
  get unobserved(): boolean {
    return this.watchesOnlyInputs && !this.hooks?.linearInput
  }

  /** Runs kernel calls on one worker, in order. */
  run(calls: KernelCall[]): Promise<void> {
    return this.pool.run(calls)
  }

  /** The byte address of worker lane `lane`'s attention scratch (attentionScratch(T) f32 each, one per worker). */
  attentionScratchAt(lane: number): number {
    const perCall = attentionScratch(this.T)
    this.attentionScratch ??= this.alloc(Math.max(1, this.pool.threads) * perCall)
    return this.attentionScratch.at(lane * perCall)
  }

  /** Whether the hooks want only the Linears' inputs (ForwardHooks.inputsOnly): the block output may be skipped. */
  get inputsOnly(): boolean {
    return this.hooks?.inputsOnly === true
  }

  /** A buffer of `width` f32 per row for the largest pass. */
  rows(width: number): ArenaTensor {
    return this.alloc(this.Mmax * width)
  }

  /** Tells the hooks what `role` reads: the first M rows of src [M, K]. */
  observe(role: LinearRole, src: ArenaTensor, M: number, K: number): void {
    const held: HeldInput | undefined =
      this.holdsInputs && !this.activations
        ? { ptr: src.ptr, keepUntil: (reading) => void this.heldReads.push(reading) }
        : undefined
    this.hooks?.linearInput?.(this.layer, role, src.view().subarray(0, M * K), M, K, held)
    // Linears sharing an input share its quantization: quantize once, at the group's first reader.
    if (this.activations && RECORDING_ROLES.has(role))
      fakeQuantActivations(this.activations, src.view().subarray(0, M * K), M, K)
  }

  /**
   * Awaits `work` and every read the hooks hold an observed buffer for: the block calls it before it writes
   * such a buffer again. Rejects with the first failure, as Promise.all does.
   */
  async afterHeldReads(work: Promise<unknown>[] = []): Promise<void> {
    await Promise.all([...work, ...this.heldReads.splice(0)])
  }

  /** Waits for the held reads to end, failed or not, so the buffers can be freed under no one. */
  async settleHeldReads(): Promise<void> {
    await Promise.allSettled(this.heldReads.splice(0))
  }

  /** W8A8: the q/k/v projections' outputs are quantized too (before RoPE), as SmoothQuant does. */
  quantizeOutputs(outputs: [ArenaTensor, number][], M: number): void {
    // FP8_DYNAMIC quantizes Linear inputs only (its scheme has no output or KV-cache quantization).
    if (this.activations !== 'int8-per-token') return
    for (const [t, width] of outputs) fakeQuantPerToken(t.view().subarray(0, M * width), M, width)
  }

  /** Lets the hooks see (and change) the attention output [M, width] before the output projection. */
  attentionOutput(att: ArenaTensor, M: number, width: number): void {
    this.hooks?.attentionOutput?.(this.layer, att.view().subarray(0, M * width), M)
  }

  /** SliceGPT-sliced models: lets the hooks see the residual [M, width] where it enters the MLP or leaves the block. */
  slicedResidual(point: 'mlp' | 'out', x: ArenaTensor, M: number, width: number): void {
    this.hooks?.slicedResidual?.(this.layer, point, x.view().subarray(0, M * width), M, width)
  }

  /** out[M, H] = RMSNorm(x) · w, across the workers. */
  rmsnorm(x: ArenaTensor, w: Affine, out: ArenaTensor, M: number, H: number, eps: number): Promise<void> {
    return rmsnorm(this.pool, x.ptr, w.w.ptr, out.ptr, M, H, eps)
  }

  /** g = SiLU(g) · u over n values, across the workers. */
  siluMulInPlace(g: ArenaTensor, u: ArenaTensor, n: number): Promise<void> {
    return siluMul(this.pool, g.ptr, u.ptr, g.ptr, n)
  }

  /** y[M, N] = x[M, K] · Wᵀ + b. */
  linear(x: ArenaTensor, a: Affine, y: ArenaTensor, M: number, K: number, N: number): Promise<void> {
    return matmul(this.pool, x.ptr, a.w.ptr, y.ptr, M, K, N, a.b?.ptr)
  }

  /**
   * q, k, v from a fused projection whose weight rows are ordered [q; k; v] (qDim, kvDim, kvDim rows):
   * three products on slices of the weight, so no split copy of the output is needed.
   */
  fusedQkv(
    x: ArenaTensor,
    qkv: Affine,
    q: ArenaTensor,
    k: ArenaTensor,
    v: ArenaTensor,
    M: number,
    K: number,
    qDim: number,
    kvDim: number,
  ): Promise<void> {
    const slice = (row0: number, rows: number, y: ArenaTensor): Promise<void> =>
      matmul(this.pool, x.ptr, qkv.w.at(row0 * K), y.ptr, M, K, rows, qkv.b?.at(row0))
    return Promise.all([slice(0, qDim, q), slice(qDim, kvDim, k), slice(qDim + kvDim, kvDim, v)]).then(() => undefined)
  }

  /**
   * Causal attention of each of the nb windows of a pass on its own (positions restart at 0), after
   * `rotate` (if any) has been applied to that window's q and k.
   */
  async attention(
    q: ArenaTensor,
    k: ArenaTensor,
    v: ArenaTensor,
    out: ArenaTensor,
    nb: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    rotate?: RotateWindow,
  ): Promise<void> {
    const T = this.T
    const qDim = heads * headDim,
      kvDim = kvHeads * headDim
    const lanes = Math.min(this.pool.threads, nb)
    if (lanes > 1 && !this.hooks?.keysValues && (!rotate || rotate.calls)) {
      // A window per worker, each worker's windows one after another: every window is one task (RoPE and
      // all heads), so no worker waits at a barrier per window for the other's half of the heads, and
      // the main thread does nothing. Heads are independent, so the bits are the same either way.
      const windowCalls = (b: number, lane: number): KernelCall[] => [
        ...(rotate
          ? [...rotate.calls!(q.at(b * T * qDim), heads), ...rotate.calls!(k.at(b * T * kvDim), kvHeads)]
          : []),
        attentionCall(
          q.at(b * T * qDim),
          k.at(b * T * kvDim),
          v.at(b * T * kvDim),
          out.at(b * T * qDim),
          this.attentionScratchAt(lane),
          T,
          heads,
          kvHeads,
          headDim,
          0,
          heads,
        ),
      ]
      await Promise.all(
        Array.from({ length: lanes }, async (_, lane) => {
          for (let b = lane; b < nb; b += lanes) await this.pool.run(windowCalls(b, lane))
        }),
      )
      return
    }
    for (let b = 0; b < nb; b++) {
      if (rotate) {
        rotate(q.at(b * T * qDim), heads)
        rotate(k.at(b * T * kvDim), kvHeads)
      }
      this.hooks?.keysValues?.(
        this.layer,
        k.view().subarray(b * T * kvDim, (b + 1) * T * kvDim),
        v.view().subarray(b * T * kvDim, (b + 1) * T * kvDim),
        T,
        kvHeads,
        headDim,
      )
      await attention(
        this.pool,
        q.at(b * T * qDim),
        k.at(b * T * kvDim),
        v.at(b * T * kvDim),
        out.at(b * T * qDim),
        (part) => this.attentionScratchAt(part),
        T,
        heads,
        kvHeads,
        headDim,
      )
    }
  }
}
