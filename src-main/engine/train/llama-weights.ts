// A Llama-family model's weights in kernel memory for training: the frozen parts (embedding, norms, output
// head, biases) and the decoder-block Linears, which the optimizer updates in place. The same class holds
// a frozen teacher. Other families are refused: their backward (LayerNorm, GELU, learned positions,
// parallel residuals) can follow later.

import type { ModelArchitecture } from '../arch/types'
import { tensorName } from '../arch'
import { WhittleError } from '../errors'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine } from '../forward/block-context'
import { WeightLoader } from '../forward/weight-loader'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'

// The Linears of a Llama block, declared once with the forward pass that runs them.
import { LLAMA_LINEARS, type LlamaLinear } from '../forward/llama-sublayers'
export { LLAMA_LINEARS, type LlamaLinear }

export interface TrainLayer {
  attnNorm: Affine
  ffnNorm: Affine
  linear: Record<LlamaLinear, Affine>
}

/**
 * Frozen block Linears held in a compact form (QLoRA's NF4 base): load hands each f32 weight to pack,
 * which keeps its own copy and returns the tensor the kernels will read the weight from; unpack(l)
 * makes layer l's tensors hold its weights before the block runs.
 */
export interface PackedLinears {
  pack(layer: number, role: LlamaLinear, weight: Float32Array, rows: number, cols: number): ArenaTensor
  unpack(layer: number): void
  /** Kernel-memory bytes of the packed weights. */
  readonly packedBytes: number
  free(): void
}

/** [out, in] of each block Linear, from the geometry. */
export function linearShapes(a: ModelArchitecture): Record<LlamaLinear, [number, number]> {
  const H = a.hiddenSize,
    qDim = a.heads * a.headDim,
    kvDim = a.kvHeads * a.headDim,
    F = a.intermediateSize
  return { q: [qDim, H], k: [kvDim, H], v: [kvDim, H], o: [H, qDim], gate: [F, H], up: [F, H], down: [H, F] }
}

/** Refuses what the training engine cannot run, naming the model and the reason. */
export function requireTrainable(model: LoadedModel): void {
  const a = model.arch
  if (a.family !== 'llama') {
    throw new WhittleError(
      'unsupported',
      model.files.path,
      `training needs a backward pass, which Whittle has for the Llama family only (this model is ${a.family}); GPT-2, OPT and GPT-NeoX backward can follow later`,
    )
  }
  if (!(a.hiddenSize > 0 && a.heads > 0 && a.kvHeads > 0 && a.headDim > 0 && a.layers > 0 && a.intermediateSize > 0)) {
    throw new WhittleError(
      'config',
      model.files.path,
      'the architecture geometry is incomplete; cannot train the model',
    )
  }
  if (a.heads % a.kvHeads !== 0)
    throw new WhittleError(
      'config',
      model.files.path,
      `${a.heads} attention heads cannot share ${a.kvHeads} key/value heads evenly`,
    )
  if (a.intermediateSizes)
    throw new WhittleError(
      'unsupported',
      model.files.path,
      'training a model whose layers have different MLP widths (whittle_intermediate_sizes) is not supported yet',
    )
  if (a.ropeLayout === 'none')
    throw new WhittleError(
      'config',
      model.files.path,
      'a Llama-family model without rotary embeddings cannot be trained',
    )
  if (model.runtime?.activations)
    throw new WhittleError(
      'unsupported',
      model.files.path,
      'a model with run-time activation quantization (W8A8) cannot be trained',
    )
}

export class LlamaWeights {
  private constructor(
    private readonly loader: WeightLoader,
    readonly arch: ModelArchitecture,
    /** [vocab, H] */
    readonly embed: ArenaTensor,
    /** [vocab, H]: the output head (the embedding itself when tied). */
    readonly head: ArenaTensor,
    readonly finalNorm: Affine,
    readonly layers: TrainLayer[],
    /** Tensor names of each layer's Linears (HF names for safetensors models). */
    readonly names: Record<LlamaLinear, string>[],
    /** Where the block Linears are packed (frozen); null when they are f32 in kernel memory. */
    readonly packed: PackedLinears | null = null,
  ) {}

  /** Makes layer l's Linears readable by the kernels (a no-op unless they are packed). */
  prepare(l: number): void {
    this.packed?.unpack(l)
  }

  static async load(pool: WorkerPool, model: LoadedModel, packed: PackedLinears | null = null): Promise<LlamaWeights> {
    requireTrainable(model)
    const a = model.arch
    const loader = new WeightLoader(pool, model)
    try {
      const H = a.hiddenSize
      const embedEntry = loader.entry(null, 'embed')
      loader.requireShape(embedEntry, [embedEntry.shape[0], H])
      const embed = await loader.tensor(embedEntry)
      const headEntry = loader.optionalEntry(null, 'lm_head')
      if (headEntry) loader.requireShape(headEntry, [embedEntry.shape[0], H])
      const head = headEntry ? await loader.tensor(headEntry) : embed
      const finalNorm = await loader.norm(null, 'final_norm', H, false)
      const shapes = linearShapes(a)
      const layers: TrainLayer[] = []
      const names: Record<LlamaLinear, string>[] = []
      for (let l = 0; l < a.layers; l++) {
        const linear = {} as Record<LlamaLinear, Affine>
        const layerNames = {} as Record<LlamaLinear, string>
        for (const role of LLAMA_LINEARS) {
          const affine = await loader.linear(l, role, ...shapes[role])
          if (packed) {
            const w = packed.pack(l, role, affine.w.view(), ...shapes[role])
            loader.drop(affine.w)
            linear[role] = { w, b: affine.b }
          } else {
            linear[role] = affine
          }
          layerNames[role] = tensorName(a, l, role)!
        }
        layers.push({
          attnNorm: await loader.norm(l, 'attn_norm', H, false),
          ffnNorm: await loader.norm(l, 'ffn_norm', H, false),
          linear,
        })
        names.push(layerNames)
      }
      return new LlamaWeights(loader, a, embed, head, finalNorm, layers, names, packed)
    } catch (e) {
      loader.free()
      packed?.free()
      throw e
    }
  }

  get vocab(): number {
    return this.embed.length / this.arch.hiddenSize
  }

  /** Number of trainable (block Linear) weights. */
  get linearParams(): number {
    let n = 0
    for (const l of this.layers) for (const r of LLAMA_LINEARS) n += l.linear[r].w.length
    return n
  }

  free(): void {
    this.loader.free()
    this.packed?.free()
  }
}
