// GPT-2 (HF GPT2LMHeadModel): learned positions (wpe), pre-LayerNorm blocks, fused c_attn whose Conv1D
// weight [in, 3·H] is transposed once at load into [3·H, in] with rows already ordered [q; k; v],
// multi-head attention, GELU (tanh form, "gelu_new") MLP, every Linear biased, lm_head tied to wte.

import { configPath } from '../arch/declared-values'
import { WhittleError } from '../errors'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { DecoderForward } from './decoder-forward'
import { activationOf, configFlag } from './layernorm-block'
import { LayerNormForward, type LayerNormFamily } from './layernorm-forward'

function gpt2Family(model: LoadedModel): LayerNormFamily {
  const config = model.files.config
  const file = configPath(model.files)
  // The attention kernel always scales scores by 1/√headDim; GPT-2's other two scalings are refused.
  if (!configFlag(config, 'scale_attn_weights', true, file)) {
    throw new WhittleError(
      'unsupported',
      file,
      'scale_attn_weights false (unscaled attention scores) is not supported by the forward pass',
    )
  }
  if (configFlag(config, 'scale_attn_by_inverse_layer_idx', false, file)) {
    throw new WhittleError('unsupported', file, 'scale_attn_by_inverse_layer_idx is not supported by the forward pass')
  }
  return {
    block: {
      eps: model.arch.normEps ?? 1e-5,
      activation: activationOf(config, 'activation_function', 'gelu_new', file),
      residual: 'pre',
    },
    qkv: 'fused',
    finalNorm: true,
  }
}

export class Gpt2Forward extends LayerNormForward {
  private constructor(pool: WorkerPool, model: LoadedModel) {
    super(pool, model, 'gpt2', gpt2Family(model))
  }

  static create(pool: WorkerPool, model: LoadedModel): Promise<Gpt2Forward> {
    return DecoderForward.opened(new Gpt2Forward(pool, model))
  }

  protected override async embedTokens(tokens: Int32Array, T: number): Promise<Float32Array> {
    const hidden = await this.tokenRows(tokens, this.arch.hiddenSize)
    await this.addLearnedPositions(hidden, T, 0)
    return hidden
  }
}
