import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { describeArchitecture, tensorName } from './index'
import { FAKE_DIR, fakeModel, hfLlamaConfig, hfLlamaTensors, type FakeGeometry } from './testing/fake-model-files'

// stories260K's geometry: GQA with 8 heads over 4 KV heads, an FFN width that is no power of two.
const G: FakeGeometry = { hidden: 64, layers: 5, heads: 8, kvHeads: 4, inter: 172, vocab: 512 }
const CONFIG_PATH = `${FAKE_DIR}/config.json`

function expectConfigError(run: () => unknown, pattern: RegExp): void {
  let caught: unknown
  try {
    run()
  } catch (e) {
    caught = e
  }
  expect(caught).toBeInstanceOf(WhittleError)
  const err = caught as WhittleError
  expect(err.code).toBe('config')
  expect(err.file).toBe(CONFIG_PATH)
  expect(err.message).toMatch(pattern)
}

describe('Llama adapter (HF layout)', () => {
  it('reads geometry, settings and the role of every tensor', () => {
    const arch = describeArchitecture(fakeModel({ tensors: hfLlamaTensors(G), config: hfLlamaConfig(G) }))
    expect(arch).toMatchObject({
      family: 'llama',
      declared: 'LlamaForCausalLM',
      layers: 5,
      hiddenSize: 64,
      heads: 8,
      kvHeads: 4,
      headDim: 8,
      intermediateSize: 172,
      vocabSize: 512,
      maxPositions: 512,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedEmbeddings: true,
      ropeLayout: 'hf',
      warnings: [],
    })
    expect(Object.keys(arch.places)).toHaveLength(hfLlamaTensors(G).length)
    expect(arch.places['model.embed_tokens.weight']).toEqual({ role: 'embed', layer: null, transposed: false })
    expect(arch.places['model.norm.weight']).toEqual({ role: 'final_norm', layer: null, transposed: false })
    const expected: [string, string][] = [
      ['self_attn.q_proj', 'q'],
      ['self_attn.k_proj', 'k'],
      ['self_attn.v_proj', 'v'],
      ['self_attn.o_proj', 'o'],
      ['mlp.gate_proj', 'gate'],
      ['mlp.up_proj', 'up'],
      ['mlp.down_proj', 'down'],
      ['input_layernorm', 'attn_norm'],
      ['post_attention_layernorm', 'ffn_norm'],
    ]
    for (let l = 0; l < G.layers; l++) {
      for (const [part, role] of expected) {
        expect(arch.places[`model.layers.${l}.${part}.weight`]).toEqual({ role, layer: l, transposed: false })
      }
    }
  })

  it('finds tensors by layer and role', () => {
    const arch = describeArchitecture(
      fakeModel({
        tensors: hfLlamaTensors(G, { lmHead: true }),
        config: hfLlamaConfig(G, { tie_word_embeddings: false }),
      }),
    )
    expect(tensorName(arch, 3, 'down')).toBe('model.layers.3.mlp.down_proj.weight')
    expect(tensorName(arch, 0, 'attn_norm')).toBe('model.layers.0.input_layernorm.weight')
    expect(tensorName(arch, null, 'lm_head')).toBe('lm_head.weight')
    expect(tensorName(arch, null, 'embed')).toBe('model.embed_tokens.weight')
    expect(tensorName(arch, 5, 'q')).toBeUndefined()
    expect(tensorName(arch, 0, 'qkv')).toBeUndefined()
    expect(arch.tiedEmbeddings).toBe(false)
  })

  it("reads Qwen2 q/k/v biases with their weight's role, and tensorName still returns the weight", () => {
    const g = { ...G, layers: 2 }
    const config = hfLlamaConfig(g, { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' })
    const arch = describeArchitecture(fakeModel({ tensors: hfLlamaTensors(g, { qkvBias: true }), config }))
    expect(arch.family).toBe('llama')
    expect(arch.declared).toBe('Qwen2ForCausalLM')
    expect(arch.places['model.layers.1.self_attn.k_proj.bias']).toEqual({
      role: 'k',
      layer: 1,
      transposed: false,
      bias: true,
    })
    expect(tensorName(arch, 1, 'k')).toBe('model.layers.1.self_attn.k_proj.weight')
  })

  it('detects the family from model_type alone, and Mistral as Llama', () => {
    const { architectures: _, ...noArchitectures } = hfLlamaConfig(G)
    expect(describeArchitecture(fakeModel({ tensors: hfLlamaTensors(G), config: noArchitectures })).declared).toBe(
      'llama',
    )
    const mistral = hfLlamaConfig(G, { architectures: ['MistralForCausalLM'], model_type: 'mistral' })
    expect(describeArchitecture(fakeModel({ tensors: hfLlamaTensors(G), config: mistral })).family).toBe('llama')
  })

  it('derives geometry from shapes when there is no config, saying so', () => {
    const arch = describeArchitecture(fakeModel({ tensors: hfLlamaTensors(G, { lmHead: true }) }))
    expect(arch).toMatchObject({
      family: 'llama',
      declared: '',
      layers: 5,
      hiddenSize: 64,
      intermediateSize: 172,
      vocabSize: 512,
      tiedEmbeddings: false,
    })
    // Shapes cannot tell 8 heads of 8 from 1 head of 64; the guess must be consistent with them though.
    expect(arch.heads * arch.headDim).toBe(64)
    expect(arch.kvHeads * arch.headDim).toBe(32)
    expect(arch.warnings.join('\n')).toMatch(/no config\.json/)
    expect(arch.warnings.join('\n')).toMatch(/head count not declared/)
  })

  it('takes missing optional keys from the shapes', () => {
    const config = hfLlamaConfig(G)
    delete config.num_key_value_heads
    delete config.intermediate_size
    delete config.vocab_size
    delete config.rope_theta
    const arch = describeArchitecture(fakeModel({ tensors: hfLlamaTensors(G), config }))
    expect(arch).toMatchObject({ kvHeads: 4, intermediateSize: 172, vocabSize: 512, ropeTheta: 10000 })
  })

  it('honours an explicit head_dim that is not hidden / heads', () => {
    // Gemma-style: 4 heads of 32 over a hidden size of 64.
    const tensors = hfLlamaTensors(G).map(([name, shape]): [string, number[]] => {
      if (/q_proj/.test(name)) return [name, [128, 64]]
      if (/[kv]_proj/.test(name)) return [name, [64, 64]]
      if (/o_proj/.test(name)) return [name, [64, 128]]
      return [name, shape]
    })
    const arch = describeArchitecture(
      fakeModel({
        tensors,
        config: hfLlamaConfig(G, { num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32 }),
      }),
    )
    expect(arch).toMatchObject({ heads: 4, kvHeads: 2, headDim: 32 })
  })

  it('warns about a layer that lacks tensors', () => {
    const tensors = hfLlamaTensors(G).filter(([n]) => n !== 'model.layers.2.mlp.up_proj.weight')
    const arch = describeArchitecture(fakeModel({ tensors, config: hfLlamaConfig(G) }))
    expect(arch.warnings.join('\n')).toMatch(/layer 2: up/)
  })

  it('copes with a name claiming an absurd layer index', () => {
    const tensors = [
      ...hfLlamaTensors(G),
      ['model.layers.999999999999.mlp.up_proj.weight', [172, 64]] as [string, number[]],
    ]
    const started = performance.now()
    const arch = describeArchitecture(fakeModel({ tensors }))
    expect(performance.now() - started).toBeLessThan(1000)
    expect(arch.layers).toBe(1e12)
    expect(arch.warnings.join('\n')).toMatch(/layer 5: all tensors.*more layers/)
    expectConfigError(
      () => describeArchitecture(fakeModel({ tensors, config: hfLlamaConfig(G) })),
      /num_hidden_layers is 5.*layers 0\.\.999999999999/,
    )
  })

  it('warns when the config unties embeddings but there is no lm_head', () => {
    const arch = describeArchitecture(
      fakeModel({ tensors: hfLlamaTensors(G), config: hfLlamaConfig(G, { tie_word_embeddings: false }) }),
    )
    expect(arch.tiedEmbeddings).toBe(true)
    expect(arch.warnings.join('\n')).toMatch(/no lm_head/)
  })
})

describe('Llama config checked against the tensors', () => {
  const tensors = hfLlamaTensors(G)
  const run = (extra: Record<string, unknown>) => () =>
    describeArchitecture(fakeModel({ tensors, config: hfLlamaConfig(G, extra) }))

  it('rejects a layer count the tensors do not have', () => {
    expectConfigError(run({ num_hidden_layers: 12 }), /num_hidden_layers is 12.*layers 0\.\.4/)
    expectConfigError(run({ num_hidden_layers: 3 }), /num_hidden_layers is 3.*layers 0\.\.4/)
  })

  it('rejects a hidden size the q projection does not have', () => {
    expectConfigError(run({ hidden_size: 128 }), /model\.embed_tokens\.weight has shape \[512, 64\].*hidden_size 128/)
    // Without the embedding, the first block tensor is the one that disagrees: q_proj should be [128, 128].
    const blocksOnly = tensors.filter(([n]) => n.startsWith('model.layers.'))
    expectConfigError(
      () => describeArchitecture(fakeModel({ tensors: blocksOnly, config: hfLlamaConfig(G, { hidden_size: 128 }) })),
      /q_proj\.weight has shape \[64, 64\], expected \[128, 128\].*hidden_size 128/,
    )
  })

  it('rejects head counts that do not match the projections', () => {
    expectConfigError(run({ num_key_value_heads: 8 }), /k_proj\.weight has shape \[32, 64\].*8 key\/value heads/)
    expectConfigError(
      run({ num_attention_heads: 4, num_key_value_heads: 4, head_dim: 8 }),
      /q_proj\.weight has shape \[64, 64\], expected \[32, 64\]/,
    )
  })

  it('rejects vocab and intermediate sizes the tensors do not have', () => {
    expectConfigError(run({ vocab_size: 32000 }), /embed_tokens\.weight.*vocab_size 32000/)
    expectConfigError(run({ intermediate_size: 256 }), /gate_proj\.weight.*intermediate_size 256/)
  })

  it('rejects invalid values', () => {
    expectConfigError(run({ hidden_size: -64 }), /hidden_size must be a positive integer/)
    expectConfigError(run({ num_hidden_layers: 2.5 }), /num_hidden_layers must be a positive integer/)
    expectConfigError(run({ vocab_size: '512' }), /vocab_size must be a number/)
    expectConfigError(run({ num_attention_heads: 7 }), /num_attention_heads 7 does not divide hidden_size 64/)
    expectConfigError(run({ num_key_value_heads: 3 }), /num_key_value_heads 3 does not divide num_attention_heads 8/)
    expectConfigError(run({ num_hidden_layers: 2 ** 40 }), /far beyond/)
    expectConfigError(run({ rms_norm_eps: -1 }), /rms_norm_eps must be positive/)
    expectConfigError(run({ tie_word_embeddings: 'yes' }), /tie_word_embeddings must be true or false/)
    expectConfigError(run({ architectures: 'LlamaForCausalLM' }), /architectures must be a list/)
  })

  it('rejects a norm of the wrong length', () => {
    const bad = tensors.map(([n, s]): [string, number[]] => (n === 'model.norm.weight' ? [n, [63]] : [n, s]))
    expectConfigError(
      () => describeArchitecture(fakeModel({ tensors: bad, config: hfLlamaConfig(G) })),
      /model\.norm\.weight has shape \[63\]/,
    )
  })

  it('only warns about inconsistent shapes when there is no config to blame', () => {
    const bad = tensors.map(([n, s]): [string, number[]] =>
      n === 'model.layers.4.mlp.up_proj.weight' ? [n, [100, 64]] : [n, s],
    )
    const arch = describeArchitecture(fakeModel({ tensors: bad }))
    expect(arch.warnings.join('\n')).toMatch(
      /model\.layers\.4\.mlp\.up_proj\.weight has shape \[100, 64\], expected \[172, 64\]/,
    )
  })
})
