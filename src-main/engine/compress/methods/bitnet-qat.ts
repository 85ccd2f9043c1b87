// Ternary quantization-aware training (BitNet b1.58, Ma et al. 2024) as distillation: distill's
// `qat: ternary`. The student's forward and backward run on ternary weights Q(W) (bitnet.ts: absmean
// scale per tensor, fp16) and on Linear inputs quantized to int8 per token, while AdamW updates latent
// f32 weights W. Gradients pass both quantizers straight through (the authors' `w + (quant(w) − w).detach()`):
// ∂L/∂W := ∂L/∂Q(W), computed with the quantized inputs, and ∂L/∂x := ∂L/∂x̂.
//
// How it sits on the trainer (train/llama-trainer.ts): the kernel buffer each block Linear is read from
// holds Q(W); the trained tensor (what AdamW updates, what keep_best snapshots) is swapped for a latent
// copy; after every optimizer step Q is applied again, so evals and the next step see the ternary model.
// The latent copies add 4 bytes per block-Linear weight of kernel memory to the trainer's formula.
// The activation quantization is a block hook (train/llama-block.ts, LinearHooks.input) at the four
// Linear inputs, the same places and the same arithmetic as the forward pass's 'int8-per-token-inputs'
// (forward/activation-quant.ts), so what training optimizes is what evaluation measures. The step's
// result is Q of the final (or best) latent weights: exactly ternary · γ, and the model runs W1.58A8.

import { choiceParam, type ParamSpec } from '../../../contract/method-params'
import { TensorScope } from '../../forward/block-context'
import { fakeQuantPerToken } from '../../forward/activation-quant'
import type { ModelView } from '../../model/model-view'
import type { ScaleDType } from '../../numerics/minmax-grid'
import type { ArenaTensor } from '../../pool/arena-tensors'
import type { WorkerPool } from '../../pool/worker-pool'
import type { LinearHooks } from '../../train/llama-block'
import type { LlamaTrainer, Trainable } from '../../train/llama-trainer'
import type { LlamaLinear } from '../../train/llama-weights'
import { BITNET_RUNTIME, ternarize, ternaryBitsPerWeight, ternaryFormat } from './bitnet'

export type QatMode = 'none' | 'ternary'

/** The distill step's QAT switch, spread into its spec. */
export const QAT_PARAMS: readonly ParamSpec[] = [
  choiceParam(
    'qat',
    'none',
    ['none', 'ternary'],
    'Quantization-aware training: ternary = BitNet b1.58 (ternary weights, int8 activations, straight-through gradients)',
  ),
]

/** fp16 scales, as bitnet's default: the result is then exactly what GGUF TQ1_0 / TQ2_0 store. */
const QAT_SCALE_DTYPE: ScaleDType = 'f16'

interface QatLinear {
  /** The trainer's tensor record: its weight is the latent copy while QAT is attached. */
  param: Trainable
  /** The kernel buffer the block reads: Q(latent). */
  quantized: ArenaTensor
}

export class TernaryQat {
  private readonly scope: TensorScope
  private linears: QatLinear[] = []
  private trainer: LlamaTrainer | null = null

  constructor(pool: WorkerPool) {
    this.scope = new TensorScope(pool)
  }

  /** What the report calls a ternary-trained Linear. */
  readonly format = `${ternaryFormat(QAT_SCALE_DTYPE)}, QAT`

  /** Storage bits per weight of a ternary-trained Linear of `numel` weights. */
  bitsPerWeight(numel: number): number {
    return ternaryBitsPerWeight(1, numel, QAT_SCALE_DTYPE)
  }

  /** Puts latent copies under the trainer's block Linears and the activation hooks on its student. */
  attach(trainer: LlamaTrainer): void {
    for (const param of trainer.params) {
      const quantized = param.weight
      const latent = this.scope.alloc(quantized.length)
      latent.view().set(quantized.view())
      this.linears.push({ param, quantized })
      param.weight = latent
    }
    this.trainer = trainer
    const a = trainer.student.arch
    const width: Record<LlamaLinear, number> = {
      q: a.hiddenSize,
      k: a.hiddenSize,
      v: a.hiddenSize,
      o: a.heads * a.headDim,
      gate: a.hiddenSize,
      up: a.hiddenSize,
      down: a.intermediateSize,
    }
    const hooks: LinearHooks = {
      input: (role, x, M) => fakeQuantPerToken(x.view().subarray(0, M * width[role]), M, width[role]),
      forward: async () => {},
      weightGrads: async () => {},
      inputGrad: async () => {},
    }
    trainer.studentHooks = () => hooks
    this.requantize()
  }

  /** Q(latent) into the buffers the blocks read (after an optimizer step, or a restored checkpoint). */
  requantize(): void {
    for (const l of this.linears) ternarize(l.param.weight.view(), l.quantized.view(), QAT_SCALE_DTYPE)
  }

  /** Copies of the ternary weights as they stand, by tensor name. */
  quantizedWeights(): Map<string, Float32Array> {
    return new Map(this.linears.map((l) => [l.param.name, l.quantized.view().slice()]))
  }

  /** `view` as the trained student runs: with int8 activations per token (for evals during training). */
  evalView(view: ModelView): ModelView {
    return { ...view, runtime: BITNET_RUNTIME }
  }

  /** The result: the ternary weights of the current latent state into `view`, which now runs W1.58A8. */
  finish(view: ModelView): void {
    this.requantize()
    for (const [name, w] of this.quantizedWeights()) view.replace(name, w)
    view.runtime = BITNET_RUNTIME
  }

  /** Gives the trainer its own buffers back and frees the latent copies. */
  free(): void {
    for (const l of this.linears) l.param.weight = l.quantized
    if (this.trainer) this.trainer.studentHooks = null
    this.linears = []
    this.scope.free()
  }
}
