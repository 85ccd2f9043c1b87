// Gradients of the distillation loss for the decoder-block Linears of a Llama-family student, on the
// kernels, with activation checkpointing per block.
//
// A micro-batch runs in passes of windows. Windows never see each other, so each pass goes the whole way
// on its own: the teacher's forward (its final hidden states), the student's forward keeping only each
// block's input (the checkpoints), the loss with its gradient at the output head, then the blocks from
// last to first, each recomputed from its checkpoint and differentiated at once. Weight gradients add up
// over passes and micro-batches.
//
// Kernel memory (bytes; P = parameters; Pb = block-Linear parameters; n = windows per pass, T = seqlen,
// L = blocks, R = logit rows per chunk), formulaBytes() below:
//   4·(P_student + P_teacher)                   weights (a teacher passed in already loaded adds nothing)
// + 4·Pb  (+ 8·Pb with AdamW's m and v)         gradients (and optimizer state); with LoRA instead the
//                                               adapters, their gradients and scratch (lora.ts), and with
//                                               a packed base only one block's Linears of P_student
// + 4·(L + 2)·n·T·H                             block checkpoints, final hidden states, their gradient
// + 4·n·T·blockFloatsPerToken (+ rope table, attention scratch)   ONE block's activations and gradients
// + 4·n·T·H_teacher + 4·R·(2H + H_teacher + 3V) teacher's final states; logits chunk (student, teacher, grad)
// peakBytes is what was really held; on stories260K (n = 8, T = 256) both say 29.7 MiB, + 1.7 MiB of AdamW.

import { WhittleError } from '../errors'
import { throwIfCancelled } from '../jobs/cancel'
import type { ArenaTensor } from '../pool/arena-tensors'
import { TensorScope } from '../forward/block-context'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { LayerDistillation } from './layer-distillation'
import { headLossAndGrad, logitRowsPerChunk, type LossSettings, type LossSums } from './head-loss'
import { blockAttentionScratch, blockFloatsPerToken, LlamaBlockRunner, type LinearHooks } from './llama-block'
import { LLAMA_LINEARS, LlamaWeights, type LlamaLinear, type PackedLinears } from './llama-weights'
import { LoraAdapters, type LoraAdapterSet, type LoraSettings } from './lora'
import { matmulNN } from './parallel-grad'
import { TeacherTopK } from './teacher-topk'

/**
 * Hooks on the student's embedding output (CoFi's hidden-dimension gates): forward may change the rows
 * [M, H] in place before block 0; backward sees ∂L/∂(those rows) after block 0's backward (the embedding
 * is frozen, so nothing flows further).
 */
export interface EmbeddingHooks {
  forward(x: Float32Array, M: number): void
  backward(dx: Float32Array, M: number): void
}

/** Activations of one pass through a block stay under this many bytes. */
const PASS_BUDGET = 192 << 20
/** Train LoRA adapters on the frozen student instead of its Linears (train/lora.ts). */
export interface AdapterTraining {
  lora: LoraSettings
  /** Which block Linears get an adapter. */
  isTarget(name: string, layer: number, role: LlamaLinear): boolean
  /** The frozen base held packed (QLoRA's NF4); absent = f32 in kernel memory. */
  packed?: PackedLinears
}

export interface Trainable {
  name: string
  layer: number
  role: LlamaLinear
  /** The weight [out, in] in kernel memory, updated in place. */
  weight: ArenaTensor
  grad: ArenaTensor
  /** 1 where the weight may change; null when the student had no zero to keep. */
  mask: Uint8Array | null
}

export class LlamaTrainer {
  private readonly scope: TensorScope
  readonly params: Trainable[] = []
  private readonly runners = new Map<string, LlamaBlockRunner>()
  /** The adapters when training LoRA (the student's Linears are then frozen). */
  private lora: LoraAdapters | null = null
  private passes = 0
  /** The teacher's cached top-k logits per window (cacheTeacherTopK), or null. */
  private topk: TeacherTopK | null = null
  /** Teacher forward passes run so far (a pass whose windows are all cached runs none). */
  teacherPasses = 0
  /**
   * Hooks on the student's block Linears other than LoRA's (quantization-aware training sets them,
   * compress/methods/bitnet-qat.ts); the teacher never runs them.
   */
  studentHooks: ((layer: number) => LinearHooks) | null = null
  /** Hooks on the student's embedding output (CoFi's hidden gates); null = none. */
  embeddingHooks: EmbeddingHooks | null = null
  /**
   * CoFi's layer-wise distillation of hidden states (layer-distillation.ts), beside the logit loss; needs
   * the teacher (alpha > 0) and runs it on every pass (no top-k cache).
   */
  layerDistillation: LayerDistillation | null = null

  private constructor(
    readonly pool: WorkerPool,
    readonly student: LlamaWeights,
    private readonly teacher: LlamaWeights | null,
    private readonly ownsTeacher: boolean,
    readonly seqlen: number,
    readonly windowsPerPass: number,
    readonly loss: LossSettings,
  ) {
    this.scope = new TensorScope(pool)
  }

  /**
   * Loads the student (and the teacher when alpha ≠ 0) into kernel memory. `teacher` may be a
   * LlamaWeights already loaded (kept by the caller) or a model to load and own.
   */
  static async create(
    pool: WorkerPool,
    student: LoadedModel,
    teacher: LoadedModel | LlamaWeights | null,
    seqlen: number,
    loss: LossSettings,
    adapters: AdapterTraining | null = null,
  ): Promise<LlamaTrainer> {
    if (!Number.isInteger(seqlen) || seqlen < 2)
      throw new WhittleError('validation', null, `seqlen must be an integer ≥ 2 (got ${seqlen})`)
    if (!(loss.temperature > 0) || !Number.isFinite(loss.temperature))
      throw new WhittleError('validation', null, `temperature must be a positive number (got ${loss.temperature})`)
    if (!(loss.alpha >= 0 && loss.alpha <= 1))
      throw new WhittleError('validation', null, `alpha must be in [0, 1] (got ${loss.alpha})`)
    if (loss.alpha > 0 && !teacher)
      throw new WhittleError('validation', null, 'distillation with alpha > 0 needs a teacher model')
    const s = await LlamaWeights.load(pool, student, adapters?.packed ?? null)
    let t: LlamaWeights | null = null
    let owns = false
    try {
      if (loss.alpha > 0 && teacher) {
        owns = !(teacher instanceof LlamaWeights)
        t = teacher instanceof LlamaWeights ? teacher : await LlamaWeights.load(pool, teacher)
        if (t.vocab !== s.vocab) {
          throw new WhittleError(
            'validation',
            student.files.path,
            `the teacher's vocabulary (${t.vocab}) differs from the student's (${s.vocab}); distillation compares their output distributions token by token`,
          )
        }
      }
      const perToken = 4 * blockFloatsPerToken(s.arch) + 4 * (s.arch.layers + 2) * s.arch.hiddenSize
      const perPass = Math.max(1, Math.floor(PASS_BUDGET / (perToken * seqlen)))
      const trainer = new LlamaTrainer(pool, s, t, owns, seqlen, perPass, loss)
      try {
        if (adapters) trainer.lora = new LoraAdapters(pool, s, adapters.lora, adapters.isTarget)
        trainer.initParams()
      } catch (e) {
        trainer.lora?.free()
        trainer.scope.free()
        throw e
      }
      return trainer
    } catch (e) {
      s.free()
      if (owns) t?.free()
      throw e
    }
  }

  private initParams(): void {
    if (this.lora) {
      this.params.push(...this.lora.params())
      return
    }
    this.student.layers.forEach((layer, l) => {
      for (const role of LLAMA_LINEARS) {
        const weight = layer.linear[role].w
        const grad = this.scope.alloc(weight.length)
        grad.view().fill(0)
        const w = weight.view()
        let mask: Uint8Array | null = null
        for (let i = 0; i < w.length; i++) {
          if (w[i] !== 0) continue
          mask ??= new Uint8Array(w.length).fill(1)
          mask[i] = 0
        }
        this.params.push({ name: this.student.names[l][role], layer: l, role, weight, grad, mask })
      }
    })
  }

  /**
   * Caches the teacher's top k logits of every window it sees (keyed by the window numbers given to
   * accumulate), and skips the teacher's forward pass when all windows of a pass are cached
   * (teacher-topk.ts states the approximation; k ≥ vocabulary is exact). No-op without a teacher.
   */
  cacheTeacherTopK(k: number): void {
    if (!this.teacher || k <= 0) return
    this.topk = new TeacherTopK(k, this.student.vocab, this.seqlen, this.loss.temperature)
  }

  /** Bytes held by the teacher cache (JS memory). */
  get teacherCacheBytes(): number {
    return this.topk?.bytes ?? 0
  }

  zeroGrads(): void {
    for (const p of this.params) p.grad.view().fill(0)
  }

  /** Zeroes the gradient where the student's weight was pruned (so the update keeps it at 0). */
  maskGrads(): void {
    for (const p of this.params) {
      if (!p.mask) continue
      const g = p.grad.view(),
        m = p.mask
      for (let i = 0; i < g.length; i++) if (m[i] === 0) g[i] = 0
    }
  }

  /** A block runner for this geometry holding at least `windows` windows (kept between passes). */
  private runner(weights: LlamaWeights, windows: number): LlamaBlockRunner {
    const a = weights.arch
    const key = [
      a.hiddenSize,
      a.heads,
      a.kvHeads,
      a.headDim,
      a.intermediateSize,
      a.ropeLayout,
      a.ropeTheta,
      a.normEps,
    ].join('|')
    let r = this.runners.get(key)
    if (r && r.maxWindows < windows) {
      r.free()
      this.runners.delete(key)
      r = undefined
    }
    if (!r) {
      r = new LlamaBlockRunner(this.pool, a, this.seqlen, windows)
      this.runners.set(key, r)
    }
    return r
  }

  /** Kernel-memory bytes in use now (weights, gradients, buffers, and an optimizer's state if one exists). */
  measuredBytes(): number {
    return this.pool.arena.liveBytes
  }

  /** The most kernel memory in use so far, measured inside a pass (checkpoints and logits live). */
  peakBytes = 0

  /**
   * The memory formula above, in bytes, for passes of `windows` windows, without optimizer state
   * (AdamW adds 8·Pb bytes: optimizerBytes in the training result).
   */
  formulaBytes(windows = this.windowsPerPass): number {
    const s = this.student,
      t = this.teacher,
      a = s.arch,
      T = this.seqlen,
      n = windows
    const H = a.hiddenSize,
      V = s.vocab,
      Ht = t?.arch.hiddenSize ?? 0
    const params = (w: LlamaWeights): number => {
      let p = w.embed.length + (w.head !== w.embed ? w.head.length : 0) + w.finalNorm.w.length
      for (const l of w.layers) {
        p += l.attnNorm.w.length + l.ffnNorm.w.length
        for (const r of LLAMA_LINEARS) p += l.linear[r].w.length + (l.linear[r].b?.length ?? 0)
      }
      return p
    }
    const R = logitRowsPerChunk(n * T, V)
    const runner = (w: LlamaWeights): number =>
      n * T * blockFloatsPerToken(w.arch) +
      T * w.arch.headDim +
      Math.max(1, this.pool.threads) * blockAttentionScratch(T)
    const sameGeometry = !t || blockFloatsPerToken(t.arch) === blockFloatsPerToken(a)
    // A packed base keeps one block's Linears in kernel memory; LoRA trains adapters instead of gradients.
    const linears = s.linearParams
    const heldLinears = s.packed ? linears / a.layers : linears
    const trained = this.lora ? this.lora.formulaFloats(n * T) : linears
    return (
      4 *
        (params(s) -
          linears +
          heldLinears +
          (t && this.ownsTeacher ? params(t) : 0) +
          trained +
          (a.layers + 2) * n * T * H +
          n * T * Ht +
          runner(s) +
          (t && !sameGeometry ? runner(t) : 0) +
          R * (2 * H + Ht + (t ? 3 : 2) * V)) +
      20 * R
    )
  }

  /** Writes the token embeddings of `windows` into x (rows in window order). */
  private embed(weights: LlamaWeights, windows: Int32Array[], x: ArenaTensor): void {
    const H = weights.arch.hiddenSize,
      V = weights.vocab
    const table = weights.embed.view(),
      out = x.view()
    let row = 0
    for (const w of windows) {
      for (const t of w) {
        if (!(t >= 0 && t < V))
          throw new WhittleError('validation', null, `token id ${t} outside the vocabulary (${V})`)
        out.set(table.subarray(t * H, (t + 1) * H), row * H)
        row++
      }
    }
  }

  /** Teacher forward: its final hidden states for the windows, into out [n·T, H_teacher]. */
  private async teacherStates(windows: Int32Array[], out: ArenaTensor): Promise<void> {
    const t = this.teacher!
    const r = this.runner(t, windows.length)
    this.embed(t, windows, r.x)
    const n = windows.length * this.seqlen * t.arch.hiddenSize
    for (let l = 0; l < t.layers.length; l++) {
      await r.forward(t.layers[l], windows.length, true)
      this.layerDistillation?.captureTeacher(l, r.x.view().subarray(0, n))
    }
    out.view().set(r.x.view().subarray(0, n))
  }

  /**
   * Runs one micro-batch (windows of `seqlen` tokens) forward and backward, ADDING its gradients to the
   * parameters' grads. `scale` multiplies the per-prediction loss (1 / predictions of the whole step).
   */
  async accumulate(
    windows: Int32Array[],
    scale: number,
    signal?: AbortSignal,
    /** Which window of the training text each one is (the teacher cache's keys); absent = no caching. */
    keys?: readonly number[],
  ): Promise<LossSums> {
    const T = this.seqlen
    for (const w of windows)
      if (w.length !== T)
        throw new WhittleError('validation', null, `a training window has ${w.length} tokens, not ${T}`)
    const sums: LossSums = { ce: 0, kl: 0, predictions: 0 }
    for (let b0 = 0; b0 < windows.length; b0 += this.windowsPerPass) {
      throwIfCancelled(signal)
      const part = windows.slice(b0, b0 + this.windowsPerPass)
      const s = await this.pass(part, scale, keys?.slice(b0, b0 + this.windowsPerPass) ?? null)
      sums.ce += s.ce
      sums.kl += s.kl
      sums.predictions += s.predictions
    }
    return sums
  }

  private async pass(windows: Int32Array[], scale: number, keys: readonly number[] | null): Promise<LossSums> {
    const T = this.seqlen,
      nb = windows.length,
      M = nb * T
    const s = this.student,
      a = s.arch,
      H = a.hiddenSize,
      L = a.layers
    const scope = new TensorScope(this.pool)
    try {
      let teacherFinal: ArenaTensor | null = null
      const cache = this.topk && keys && keys.length === nb ? { topk: this.topk, keys } : null
      const cached = cache !== null && !this.layerDistillation && keys!.every((w) => cache.topk.has(w))
      if (this.teacher && !cached) {
        teacherFinal = scope.alloc(M * this.teacher.arch.hiddenSize)
        await this.teacherStates(windows, teacherFinal)
        this.teacherPasses++
      }
      // Student forward, keeping each block's input: ckpt[l] = input of block l, ckpt[L] = final states.
      const r = this.runner(s, nb)
      const ckpt = scope.alloc((L + 1) * M * H)
      const lora = this.lora
      if (lora) lora.pass = this.passes++
      this.embed(s, windows, r.x)
      this.embeddingHooks?.forward(r.x.view().subarray(0, M * H), M)
      for (let l = 0; l < L; l++) {
        ckpt.view().set(r.x.view().subarray(0, M * H), l * M * H)
        s.prepare(l)
        await r.forward(s.layers[l], nb, true, lora?.hooks(l) ?? this.studentHooks?.(l) ?? null)
      }
      ckpt.view().set(r.x.view().subarray(0, M * H), L * M * H)
      // Block l's output is the checkpoint of block l + 1 (the final states for the last).
      if (this.layerDistillation && !teacherFinal)
        throw new WhittleError('validation', null, 'layer distillation needs a teacher (alpha > 0)')
      const layerGrads =
        this.layerDistillation && teacherFinal
          ? this.layerDistillation.studentPass((l) => ckpt.view().subarray((l + 1) * M * H, (l + 2) * M * H), L, scale)
              .grads
          : null
      // Loss and its gradient at the head, then back through the final norm.
      const dx = scope.alloc(M * H)
      dx.view().fill(0)
      const head = { pool: this.pool, student: s, teacher: this.teacher, loss: this.loss, seqlen: T }
      const sums = await headLossAndGrad(head, windows, ckpt.at(L * M * H), teacherFinal, dx, scale, scope, cache)
      this.peakBytes = Math.max(this.peakBytes, sums.peakBytes)
      // Blocks, last to first: recompute from the checkpoint, then differentiate. The last block's
      // intermediates are still in the runner from the forward (only its input was overwritten).
      for (let l = L - 1; l >= 0; l--) {
        r.x.view().set(ckpt.view().subarray(l * M * H, (l + 1) * M * H))
        s.prepare(l)
        const hooks = lora?.hooks(l) ?? this.studentHooks?.(l) ?? null
        if (l < L - 1) await r.forward(s.layers[l], nb, false, hooks)
        const grads: Partial<Record<LlamaLinear, ArenaTensor>> = {}
        if (!lora) for (const p of this.params) if (p.layer === l) grads[p.role] = p.grad
        const layerGrad = layerGrads?.[l]
        if (layerGrad) {
          const d = dx.view()
          for (let i = 0; i < layerGrad.length; i++) d[i] += layerGrad[i]
        }
        await r.backward(s.layers[l], grads, dx, nb, hooks)
      }
      this.embeddingHooks?.backward(dx.view().subarray(0, M * H), M)
      return sums
    } finally {
      scope.free()
    }
  }

  /** The adapters as they stand (copies), or null when the Linears themselves are trained. */
  adapters(): LoraAdapterSet | null {
    return this.lora?.snapshot() ?? null
  }

  /** The frozen base weight of a block Linear as training sees it (dequantized when packed), a copy. */
  baseWeight(layer: number, role: LlamaLinear): Float32Array {
    this.student.prepare(layer)
    return this.student.layers[layer].linear[role].w.view().slice()
  }

  /** Copies of every trained tensor's values (the Linears, or the adapters), for restoreParams. */
  snapshotParams(): Float32Array[] {
    return this.params.map((p) => p.weight.view().slice())
  }

  /** Puts back values taken by snapshotParams (a kept checkpoint becomes the trained state). */
  restoreParams(saved: readonly Float32Array[]): void {
    if (saved.length !== this.params.length) throw new Error('restoreParams: the snapshot is of other parameters')
    this.params.forEach((p, i) => p.weight.view().set(saved[i]))
  }

  /** Current values of every trainable weight (copies), by tensor name. */
  weights(): Map<string, Float32Array> {
    return new Map(this.params.map((p) => [p.name, p.weight.view().slice()]))
  }

  free(): void {
    this.lora?.free()
    for (const r of this.runners.values()) r.free()
    this.runners.clear()
    this.scope.free()
    this.student.free()
    if (this.ownsTeacher) this.teacher?.free()
  }
}
