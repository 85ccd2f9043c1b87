import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { describeArchitecture, tensorName } from './index'
import { fakeModel, hfLlamaTensors } from './testing/fake-model-files'

const H = 32
const LAYERS = 2
const HEADS = 4
const INTER = 128
const VOCAB = 100
const POSITIONS = 64

/** GPT2LMHeadModel's state dict: Conv1D weights are [in, out]. */
function gpt2Tensors(prefix = 'transformer.', mlpIn = [H, INTER]): [string, number[]][] {
  const out: [string, number[]][] = [
    [`${prefix}wte.weight`, [VOCAB, H]],
    [`${prefix}wpe.weight`, [POSITIONS, H]],
  ]
  for (let l = 0; l < LAYERS; l++) {
    const p = `${prefix}h.${l}.`
    out.push(
      [`${p}ln_1.weight`, [H]],
      [`${p}ln_1.bias`, [H]],
      [`${p}attn.bias`, [1, 1, POSITIONS, POSITIONS]],
      [`${p}attn.c_attn.weight`, [H, 3 * H]],
      [`${p}attn.c_attn.bias`, [3 * H]],
      [`${p}attn.c_proj.weight`, [H, H]],
      [`${p}attn.c_proj.bias`, [H]],
      [`${p}ln_2.weight`, [H]],
      [`${p}ln_2.bias`, [H]],
      [`${p}mlp.c_fc.weight`, mlpIn],
      [`${p}mlp.c_fc.bias`, [INTER]],
      [`${p}mlp.c_proj.weight`, [INTER, H]],
      [`${p}mlp.c_proj.bias`, [H]],
    )
  }
  out.push([`${prefix}ln_f.weight`, [H]], [`${prefix}ln_f.bias`, [H]])
  return out
}
const GPT2_CONFIG = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  n_embd: H,
  n_layer: LAYERS,
  n_head: HEADS,
  n_inner: null,
  n_positions: POSITIONS,
  vocab_size: VOCAB,
  layer_norm_epsilon: 1e-5,
}

function optTensors(wordDim = H, prefix = 'model.'): [string, number[]][] {
  const out: [string, number[]][] = [
    [`${prefix}decoder.embed_tokens.weight`, [VOCAB, wordDim]],
    [`${prefix}decoder.embed_positions.weight`, [POSITIONS + 2, H]],
  ]
  if (wordDim !== H)
    out.push(
      [`${prefix}decoder.project_in.weight`, [H, wordDim]],
      [`${prefix}decoder.project_out.weight`, [wordDim, H]],
    )
  for (let l = 0; l < LAYERS; l++) {
    const p = `${prefix}decoder.layers.${l}.`
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj'])
      out.push([`${p}self_attn.${proj}.weight`, [H, H]], [`${p}self_attn.${proj}.bias`, [H]])
    out.push(
      [`${p}self_attn_layer_norm.weight`, [H]],
      [`${p}self_attn_layer_norm.bias`, [H]],
      [`${p}fc1.weight`, [INTER, H]],
      [`${p}fc1.bias`, [INTER]],
      [`${p}fc2.weight`, [H, INTER]],
      [`${p}fc2.bias`, [H]],
      [`${p}final_layer_norm.weight`, [H]],
      [`${p}final_layer_norm.bias`, [H]],
    )
  }
  out.push(
    [`${prefix}decoder.final_layer_norm.weight`, [H]],
    [`${prefix}decoder.final_layer_norm.bias`, [H]],
    ['lm_head.weight', [VOCAB, wordDim]],
  )
  return out
}
const OPT_CONFIG = {
  architectures: ['OPTForCausalLM'],
  model_type: 'opt',
  hidden_size: H,
  num_hidden_layers: LAYERS,
  num_attention_heads: HEADS,
  ffn_dim: INTER,
  vocab_size: VOCAB,
  max_position_embeddings: POSITIONS,
  word_embed_proj_dim: H,
}

function neoxTensors(): [string, number[]][] {
  const out: [string, number[]][] = [['gpt_neox.embed_in.weight', [VOCAB, H]]]
  for (let l = 0; l < LAYERS; l++) {
    const p = `gpt_neox.layers.${l}.`
    out.push(
      [`${p}input_layernorm.weight`, [H]],
      [`${p}input_layernorm.bias`, [H]],
      [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}post_attention_layernorm.bias`, [H]],
      [`${p}attention.rotary_emb.inv_freq`, [H / HEADS / 2]],
      [`${p}attention.query_key_value.weight`, [3 * H, H]],
      [`${p}attention.query_key_value.bias`, [3 * H]],
      [`${p}attention.dense.weight`, [H, H]],
      [`${p}attention.dense.bias`, [H]],
      [`${p}mlp.dense_h_to_4h.weight`, [INTER, H]],
      [`${p}mlp.dense_h_to_4h.bias`, [INTER]],
      [`${p}mlp.dense_4h_to_h.weight`, [H, INTER]],
      [`${p}mlp.dense_4h_to_h.bias`, [H]],
    )
  }
  out.push(
    ['gpt_neox.final_layer_norm.weight', [H]],
    ['gpt_neox.final_layer_norm.bias', [H]],
    ['embed_out.weight', [VOCAB, H]],
  )
  return out
}
const NEOX_CONFIG = {
  architectures: ['GPTNeoXForCausalLM'],
  model_type: 'gpt_neox',
  hidden_size: H,
  num_hidden_layers: LAYERS,
  num_attention_heads: HEADS,
  intermediate_size: INTER,
  vocab_size: VOCAB,
  max_position_embeddings: POSITIONS,
  layer_norm_eps: 1e-5,
  rotary_emb_base: 10000,
  tie_word_embeddings: false,
}

const COMMON_GEOMETRY = {
  layers: LAYERS,
  hiddenSize: H,
  heads: HEADS,
  kvHeads: HEADS,
  headDim: H / HEADS,
  intermediateSize: INTER,
  vocabSize: VOCAB,
}

describe('GPT-2 adapter', () => {
  it('reads GPT-2 with Conv1D weights marked transposed', () => {
    const arch = describeArchitecture(fakeModel({ tensors: gpt2Tensors(), config: GPT2_CONFIG }))
    expect(arch).toMatchObject({
      family: 'gpt2',
      declared: 'GPT2LMHeadModel',
      ...COMMON_GEOMETRY,
      maxPositions: POSITIONS,
      ropeLayout: 'none',
      ropeTheta: null,
      tiedEmbeddings: true,
      warnings: [],
    })
    expect(arch.places['transformer.h.1.attn.c_attn.weight']).toEqual({ role: 'qkv', layer: 1, transposed: true })
    expect(arch.places['transformer.h.1.attn.c_attn.bias']).toEqual({
      role: 'qkv',
      layer: 1,
      transposed: false,
      bias: true,
    })
    expect(arch.places['transformer.h.0.mlp.c_fc.weight']).toEqual({ role: 'fc1', layer: 0, transposed: true })
    expect(arch.places['transformer.h.0.mlp.c_proj.weight']).toEqual({ role: 'fc2', layer: 0, transposed: true })
    expect(arch.places['transformer.h.0.attn.c_proj.weight']).toEqual({ role: 'o', layer: 0, transposed: true })
    expect(arch.places['transformer.h.0.ln_1.weight']).toEqual({ role: 'attn_norm', layer: 0, transposed: false })
    expect(arch.places['transformer.h.0.ln_2.bias']).toEqual({
      role: 'ffn_norm',
      layer: 0,
      transposed: false,
      bias: true,
    })
    expect(arch.places['transformer.h.0.attn.bias']).toEqual({ role: 'other', layer: 0, transposed: false })
    expect(arch.places['transformer.wte.weight'].role).toBe('embed')
    expect(arch.places['transformer.wpe.weight'].role).toBe('pos_embed')
    expect(tensorName(arch, null, 'final_norm')).toBe('transformer.ln_f.weight')
  })

  it('reads names without the transformer. prefix, and without a config', () => {
    const arch = describeArchitecture(fakeModel({ tensors: gpt2Tensors('') }))
    expect(arch).toMatchObject({
      family: 'gpt2',
      layers: LAYERS,
      hiddenSize: H,
      intermediateSize: INTER,
      vocabSize: VOCAB,
    })
    expect(arch.places['h.1.mlp.c_fc.weight']).toEqual({ role: 'fc1', layer: 1, transposed: true })
  })

  it('rejects an MLP stored in the wrong orientation against the config', () => {
    expect(() =>
      describeArchitecture(fakeModel({ tensors: gpt2Tensors('transformer.', [INTER, H]), config: GPT2_CONFIG })),
    ).toThrow(/config\.json: transformer\.h\.0\.mlp\.c_fc\.weight has shape \[128, 32\] \(stored \[in, out\]/)
  })
})

describe('OPT adapter', () => {
  it('reads OPT', () => {
    const arch = describeArchitecture(fakeModel({ tensors: optTensors(), config: OPT_CONFIG }))
    expect(arch).toMatchObject({
      family: 'opt',
      declared: 'OPTForCausalLM',
      ...COMMON_GEOMETRY,
      ropeLayout: 'none',
      tiedEmbeddings: true,
      warnings: [],
    })
    const roles: Record<string, string> = {
      'self_attn.q_proj': 'q',
      'self_attn.k_proj': 'k',
      'self_attn.v_proj': 'v',
      'self_attn.out_proj': 'o',
      fc1: 'fc1',
      fc2: 'fc2',
      self_attn_layer_norm: 'attn_norm',
      final_layer_norm: 'ffn_norm',
    }
    for (const [part, role] of Object.entries(roles)) {
      expect(arch.places[`model.decoder.layers.1.${part}.weight`]).toEqual({ role, layer: 1, transposed: false })
    }
    expect(arch.places['model.decoder.final_layer_norm.weight']).toEqual({
      role: 'final_norm',
      layer: null,
      transposed: false,
    })
    expect(arch.places['model.decoder.embed_positions.weight'].role).toBe('pos_embed')
    expect(tensorName(arch, null, 'lm_head')).toBe('lm_head.weight')
  })

  it('reads an OPT-350m-style embedding narrower than the hidden size', () => {
    const arch = describeArchitecture(
      fakeModel({ tensors: optTensors(16), config: { ...OPT_CONFIG, word_embed_proj_dim: 16 } }),
    )
    expect(arch.hiddenSize).toBe(H)
    expect(arch.places['model.decoder.project_in.weight']).toEqual({ role: 'other', layer: null, transposed: false })
    expect(() => describeArchitecture(fakeModel({ tensors: optTensors(16), config: OPT_CONFIG }))).toThrow(
      /embed_tokens\.weight has shape \[100, 16\]/,
    )
  })

  it('detects OPT from names saved without the model. prefix', () => {
    const arch = describeArchitecture(fakeModel({ tensors: optTensors(H, '') }))
    expect(arch).toMatchObject({ family: 'opt', layers: LAYERS, hiddenSize: H, intermediateSize: INTER })
  })
})

describe('GPT-NeoX adapter', () => {
  it('reads GPT-NeoX', () => {
    const arch = describeArchitecture(fakeModel({ tensors: neoxTensors(), config: NEOX_CONFIG }))
    expect(arch).toMatchObject({
      family: 'gpt-neox',
      declared: 'GPTNeoXForCausalLM',
      ...COMMON_GEOMETRY,
      ropeLayout: 'hf',
      ropeTheta: 10000,
      normEps: 1e-5,
      tiedEmbeddings: false,
      warnings: [],
    })
    expect(arch.places['gpt_neox.layers.0.attention.query_key_value.weight']).toEqual({
      role: 'qkv',
      layer: 0,
      transposed: false,
    })
    expect(arch.places['gpt_neox.layers.0.attention.dense.weight'].role).toBe('o')
    expect(arch.places['gpt_neox.layers.0.mlp.dense_h_to_4h.weight'].role).toBe('fc1')
    expect(arch.places['gpt_neox.layers.0.mlp.dense_4h_to_h.weight'].role).toBe('fc2')
    expect(arch.places['gpt_neox.layers.0.input_layernorm.weight'].role).toBe('attn_norm')
    expect(arch.places['gpt_neox.layers.0.post_attention_layernorm.weight'].role).toBe('ffn_norm')
    expect(arch.places['gpt_neox.layers.0.attention.rotary_emb.inv_freq']).toEqual({
      role: 'other',
      layer: 0,
      transposed: false,
    })
    expect(arch.places['gpt_neox.embed_in.weight'].role).toBe('embed')
    expect(arch.places['gpt_neox.final_layer_norm.weight'].role).toBe('final_norm')
    expect(tensorName(arch, null, 'lm_head')).toBe('embed_out.weight')
  })

  it('rejects a qkv projection that does not hold 3 × hidden rows', () => {
    const bad = neoxTensors().map(([n, s]): [string, number[]] =>
      n.endsWith('query_key_value.weight') ? [n, [2 * H, H]] : [n, s],
    )
    expect(() => describeArchitecture(fakeModel({ tensors: bad, config: NEOX_CONFIG }))).toThrow(WhittleError)
  })
})

describe('families Whittle does not know', () => {
  it('opens them as unknown, with roles other and the plainly stated geometry', () => {
    const config = {
      architectures: ['FalconForCausalLM'],
      model_type: 'falcon',
      hidden_size: 64,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      vocab_size: -3,
    }
    const arch = describeArchitecture(
      fakeModel({
        tensors: hfLlamaTensors({ hidden: 64, layers: 5, heads: 8, kvHeads: 4, inter: 172, vocab: 512 }),
        config,
      }),
    )
    expect(arch).toMatchObject({
      family: 'unknown',
      declared: 'FalconForCausalLM',
      layers: 5,
      hiddenSize: 64,
      heads: 8,
      headDim: 8,
      vocabSize: 0,
    })
    expect(Object.values(arch.places).every((p) => p.role === 'other')).toBe(true)
    expect(arch.warnings.join('\n')).toMatch(/FalconForCausalLM/)
  })

  it('opens a bare file of unrecognised names, counting layers from the names', () => {
    const arch = describeArchitecture(
      fakeModel({
        tensors: [
          ['encoder.block.0.layer.0.weight', [4, 4]],
          ['encoder.block.3.layer.1.weight', [4, 4]],
          ['shared.weight', [10, 4]],
        ],
      }),
    )
    expect(arch).toMatchObject({ family: 'unknown', declared: '', layers: 4, hiddenSize: 0 })
    expect(arch.places['encoder.block.3.layer.1.weight'].layer).toBe(3)
    expect(arch.places['shared.weight'].layer).toBeNull()
  })
})
