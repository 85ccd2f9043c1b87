// One entry point for every family's forward pass; callers see only the CausalLM surface.

import { WhittleError } from '../errors'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import type { CausalLM } from './causal-lm'
import { Gpt2Forward } from './gpt2-forward'
import { LlamaForward } from './llama-forward'
import { NeoxForward } from './neox-forward'
import { OptForward } from './opt-forward'
import { SlicedLlamaForward } from './sliced-llama-forward'

export type { CausalLM, ForwardHooks, LinearRole, WindowNllOptions } from './causal-lm'
export { INPUT_GROUP, RECORDING_ROLES } from './causal-lm'

/** The forward pass for the model's family; 'unknown' families cannot be run. */
export async function createForward(pool: WorkerPool, model: LoadedModel): Promise<CausalLM> {
  const family = model.arch.family
  switch (family) {
    case 'llama':
      return model.arch.slicing ? SlicedLlamaForward.create(pool, model) : LlamaForward.create(pool, model)
    case 'gpt2':
      return Gpt2Forward.create(pool, model)
    case 'opt':
      return OptForward.create(pool, model)
    case 'gpt-neox':
      return NeoxForward.create(pool, model)
    case 'unknown': {
      const declared = model.arch.declared ? `'${model.arch.declared}'` : 'this model'
      throw new WhittleError(
        'unsupported',
        model.files.path,
        `cannot run ${declared}: its architecture is not one Whittle knows (Llama, Mistral, Qwen2, GPT-2, OPT, GPT-NeoX)`,
      )
    }
  }
}
