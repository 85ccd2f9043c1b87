// Meta's OPT (HF OPTForCausalLM): learned positions read from row t + 2 of embed_positions (OPT keeps
// two rows for padding offsets), LayerNorm blocks before (do_layer_norm_before, every size but 350m) or
// after each sublayer, separate biased q/k/v/out_proj, a ReLU fc1/fc2 MLP, a final LayerNorm only with
// pre-norm blocks, and lm_head tied to embed_tokens. OPT-350m embeds at word_embed_proj_dim and projects
// in and out of the hidden size (project_in / project_out, Linears without bias).

import { configPath } from '../arch/declared-values'
import { WhittleError } from '../errors'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { Affine, TensorScope } from './block-context'
import { DecoderForward } from './decoder-forward'
import { activationOf, configFlag } from './layernorm-block'
import { LayerNormForward, type LayerNormFamily } from './layernorm-forward'
import { matmul } from './parallel-ops'

/** OPTLearnedPositionalEmbedding's offset: position t is row t + 2. */
export const OPT_POSITION_OFFSET = 2
/** Rows sent through project_in at a time, to bound kernel memory. */
const PROJECT_ROWS = 4096

const PROJECTION = /^(?:model\.)?decoder\.project_(in|out)\.weight$/

function optFamily(model: LoadedModel): LayerNormFamily {
  const config = model.files.config
  const file = configPath(model.files)
  const preNorm = configFlag(config, 'do_layer_norm_before', true, file)
  return {
    block: {
      eps: model.arch.normEps ?? 1e-5,
      activation: activationOf(config, 'activation_function', 'relu', file),
      residual: preNorm ? 'pre' : 'post',
    },
    qkv: 'separate',
    // HF builds final_layer_norm only for pre-norm blocks (and not when _remove_final_layer_norm is set).
    finalNorm: preNorm && !configFlag(config, '_remove_final_layer_norm', false, file),
  }
}

export class OptForward extends LayerNormForward {
  private projectIn: Affine | null = null
  private projectOut: Affine | null = null
  /** Width of the token embeddings and the output head (word_embed_proj_dim). */
  private embedWidth: number

  private constructor(pool: WorkerPool, model: LoadedModel) {
    super(pool, model, 'opt', optFamily(model))
    this.embedWidth = this.arch.hiddenSize
  }

  static create(pool: WorkerPool, model: LoadedModel): Promise<OptForward> {
    return DecoderForward.opened(new OptForward(pool, model))
  }

  protected override async init(): Promise<void> {
    await super.init()
    const H = this.arch.hiddenSize
    const names: Partial<Record<'in' | 'out', string>> = {}
    for (const name of Object.keys(this.arch.places)) {
      const m = PROJECTION.exec(name)
      if (m) names[m[1] as 'in' | 'out'] = name
    }
    if (!names.in && !names.out) return
    if (!names.in || !names.out) {
      throw new WhittleError(
        'format',
        this.model.files.path,
        `the model has project_${names.in ? 'in' : 'out'} without project_${names.in ? 'out' : 'in'}`,
      )
    }
    const pin = this.model.entry(names.in)
    const E = pin.shape[1] ?? 0
    this.globals.requireShape(pin, [H, E])
    this.globals.requireShape(this.model.entry(names.out), [E, H])
    this.embedWidth = E
    this.projectIn = { w: await this.globals.tensor(pin), b: undefined }
    this.projectOut = { w: await this.globals.tensor(this.model.entry(names.out)), b: undefined }
  }

  protected override async embedTokens(tokens: Int32Array, T: number): Promise<Float32Array> {
    const H = this.arch.hiddenSize,
      E = this.embedWidth
    const rows = await this.tokenRows(tokens, E)
    let hidden = rows
    if (this.projectIn) {
      hidden = new Float32Array(tokens.length * H)
      const chunk = Math.min(tokens.length, PROJECT_ROWS)
      const src = this.globals.alloc(chunk * E),
        dst = this.globals.alloc(chunk * H)
      try {
        for (let r0 = 0; r0 < tokens.length; r0 += chunk) {
          const n = Math.min(chunk, tokens.length - r0)
          src.view().set(rows.subarray(r0 * E, (r0 + n) * E))
          await matmul(this.pool, src.ptr, this.projectIn.w.ptr, dst.ptr, n, E, H)
          hidden.set(dst.view().subarray(0, n * H), r0 * H)
        }
      } finally {
        this.globals.drop(src)
        this.globals.drop(dst)
      }
    }
    await this.addLearnedPositions(hidden, T, OPT_POSITION_OFFSET)
    return hidden
  }

  protected override async headInput(
    x: ArenaTensor,
    M: number,
    scope: TensorScope,
  ): Promise<{ h: ArenaTensor; width: number }> {
    const normed = await super.headInput(x, M, scope)
    if (!this.projectOut) return normed
    const y = scope.alloc(M * this.embedWidth)
    await matmul(this.pool, normed.h.ptr, this.projectOut.w.ptr, y.ptr, M, this.arch.hiddenSize, this.embedWidth)
    return { h: y, width: this.embedWidth }
  }
}
