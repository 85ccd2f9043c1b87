// The forward pass of the LayerNorm families (GPT-2, OPT, GPT-NeoX): DecoderForward with the shared
// LayerNorm block and a final LayerNorm before the output head. Each family file only reads its config
// and adds what it embeds differently (learned positions, an input projection).

import type { Family } from '../arch/types'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, BlockContext, TensorScope } from './block-context'
import { DecoderForward, type BlockPass } from './decoder-forward'
import {
  layerNormBlockBytesPerToken,
  layerNormBlockPass,
  loadLayerNormBlock,
  type LayerNormBlockOptions,
  type LayerNormBlockWeights,
  type QkvLayout,
} from './layernorm-block'
import type { WeightLoader } from './weight-loader'

export interface LayerNormFamily {
  block: LayerNormBlockOptions
  qkv: QkvLayout
  /** false where the model has no final LayerNorm (OPT with post-norm blocks). */
  finalNorm: boolean
}

export abstract class LayerNormForward extends DecoderForward<LayerNormBlockWeights> {
  private finalNorm: Affine | null = null

  protected constructor(
    pool: WorkerPool,
    model: LoadedModel,
    family: Family,
    private readonly spec: LayerNormFamily,
  ) {
    super(pool, model, family)
  }

  protected async init(): Promise<void> {
    if (this.spec.finalNorm) this.finalNorm = await this.globals.norm(null, 'final_norm', this.arch.hiddenSize, true)
  }

  protected loadLayer(layer: number, loader: WeightLoader): Promise<LayerNormBlockWeights> {
    return loadLayerNormBlock(loader, layer, this.arch, this.spec.qkv)
  }

  bytesPerToken(): number {
    return layerNormBlockBytesPerToken(this.arch)
  }

  protected blockPass(ctx: BlockContext, weights: LayerNormBlockWeights): BlockPass {
    return layerNormBlockPass(ctx, this.k, this.arch, weights, this.spec.block)
  }

  /** The final LayerNorm, in place on x (a scratch copy of the hidden states). */
  protected async headInput(
    x: ArenaTensor,
    M: number,
    _scope: TensorScope,
  ): Promise<{ h: ArenaTensor; width: number }> {
    const H = this.arch.hiddenSize
    const n = this.finalNorm
    if (n) this.k.layernorm(x.ptr, n.w.ptr, n.b!.ptr, x.ptr, M, H, this.spec.block.eps)
    return { h: x, width: H }
  }
}
