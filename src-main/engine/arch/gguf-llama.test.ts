import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { describeArchitecture, tensorName } from './index'
import { FAKE_DIR, fakeModel } from './testing/fake-model-files'

const GGUF_FILE = `${FAKE_DIR}/model.gguf`

/** llama.cpp's tensor names for a Llama of the given geometry (PyTorch [out, in] order). */
function ggufLlamaTensors(
  hidden: number,
  layers: number,
  heads: number,
  kv: number,
  ffn: number,
  vocab: number,
  output = true,
): [string, number[]][] {
  const hd = hidden / heads
  const out: [string, number[]][] = [
    ['token_embd.weight', [vocab, hidden]],
    ['output_norm.weight', [hidden]],
  ]
  if (output) out.push(['output.weight', [vocab, hidden]])
  for (let l = 0; l < layers; l++) {
    out.push(
      [`blk.${l}.attn_q.weight`, [heads * hd, hidden]],
      [`blk.${l}.attn_k.weight`, [kv * hd, hidden]],
      [`blk.${l}.attn_v.weight`, [kv * hd, hidden]],
      [`blk.${l}.attn_output.weight`, [hidden, heads * hd]],
      [`blk.${l}.attn_norm.weight`, [hidden]],
      [`blk.${l}.ffn_gate.weight`, [ffn, hidden]],
      [`blk.${l}.ffn_down.weight`, [hidden, ffn]],
      [`blk.${l}.ffn_up.weight`, [ffn, hidden]],
      [`blk.${l}.ffn_norm.weight`, [hidden]],
    )
  }
  return out
}

function llamaMetadata(arch = 'llama', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'general.architecture': arch,
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', length: 512 },
    [`${arch}.context_length`]: 128,
    [`${arch}.embedding_length`]: 64,
    [`${arch}.feed_forward_length`]: 172,
    [`${arch}.attention.head_count`]: 8,
    [`${arch}.attention.head_count_kv`]: 4,
    [`${arch}.block_count`]: 5,
    [`${arch}.attention.layer_norm_rms_epsilon`]: 1e-5,
    ...extra,
  }
}

describe('GGUF adapter', () => {
  it('reads a Llama GGUF: geometry from metadata, llama.cpp names, interleaved RoPE layout', () => {
    const arch = describeArchitecture(
      fakeModel({ format: 'gguf', tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512), metadata: llamaMetadata() }),
    )
    expect(arch).toMatchObject({
      family: 'llama',
      declared: 'llama',
      layers: 5,
      hiddenSize: 64,
      heads: 8,
      kvHeads: 4,
      headDim: 8,
      intermediateSize: 172,
      vocabSize: 512,
      maxPositions: 128,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedEmbeddings: false,
      ropeLayout: 'gguf',
      warnings: [],
    })
    const roles: Record<string, string> = {
      attn_q: 'q',
      attn_k: 'k',
      attn_v: 'v',
      attn_output: 'o',
      attn_norm: 'attn_norm',
      ffn_gate: 'gate',
      ffn_up: 'up',
      ffn_down: 'down',
      ffn_norm: 'ffn_norm',
    }
    for (let l = 0; l < 5; l++) {
      for (const [part, role] of Object.entries(roles)) {
        expect(arch.places[`blk.${l}.${part}.weight`]).toEqual({ role, layer: l, transposed: false })
        expect(tensorName(arch, l, role as never)).toBe(`blk.${l}.${part}.weight`)
      }
    }
    expect(arch.places['token_embd.weight'].role).toBe('embed')
    expect(arch.places['output_norm.weight'].role).toBe('final_norm')
    expect(tensorName(arch, null, 'lm_head')).toBe('output.weight')
  })

  it('reads a GGUF by its own metadata even when a config.json sits beside it', () => {
    const config = { architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: 99 }
    const arch = describeArchitecture(
      fakeModel({
        format: 'gguf',
        tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512),
        metadata: llamaMetadata(),
        config,
      }),
    )
    expect(arch).toMatchObject({ declared: 'llama', layers: 5, ropeLayout: 'gguf' })
    expect(arch.places['blk.0.attn_q.weight'].role).toBe('q')
  })

  it('reads tied embeddings from a missing output tensor, and rope.freq_base when present', () => {
    const arch = describeArchitecture(
      fakeModel({
        format: 'gguf',
        tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512, false),
        metadata: llamaMetadata('llama', { 'llama.rope.freq_base': 500000 }),
      }),
    )
    expect(arch.tiedEmbeddings).toBe(true)
    expect(arch.ropeTheta).toBe(500000)
  })

  it('reads Qwen2 GGUFs in the unpermuted (NeoX) RoPE layout', () => {
    const arch = describeArchitecture(
      fakeModel({ format: 'gguf', tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512), metadata: llamaMetadata('qwen2') }),
    )
    expect(arch.family).toBe('llama')
    expect(arch.ropeLayout).toBe('hf')
  })

  it('rejects metadata that disagrees with the tensors as a format error of the GGUF file', () => {
    for (const [extra, pattern] of [
      [{ 'llama.block_count': 6 }, /llama\.block_count is 6/],
      [{ 'llama.embedding_length': 128 }, /token_embd\.weight has shape \[512, 64\].*llama\.embedding_length 128/],
      [{ 'llama.attention.head_count_kv': 8 }, /attn_k\.weight has shape \[32, 64\]/],
      [{ 'llama.vocab_size': 1000 }, /llama\.vocab_size 1000/],
      [{ 'llama.feed_forward_length': -1 }, /llama\.feed_forward_length must be a positive integer/],
    ] as const) {
      let caught: unknown
      try {
        describeArchitecture(
          fakeModel({
            format: 'gguf',
            tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512),
            metadata: llamaMetadata('llama', extra),
          }),
        )
      } catch (e) {
        caught = e
      }
      expect(caught).toBeInstanceOf(WhittleError)
      expect((caught as WhittleError).code).toBe('format')
      expect((caught as WhittleError).file).toBe(GGUF_FILE)
      expect((caught as WhittleError).message).toMatch(pattern)
    }
  })

  it('accepts 64-bit metadata integers as bigints', () => {
    const arch = describeArchitecture(
      fakeModel({
        format: 'gguf',
        tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512),
        metadata: llamaMetadata('llama', { 'llama.block_count': 5n }),
      }),
    )
    expect(arch.layers).toBe(5)
  })

  it('warns when the tokenizer and the embedding disagree on the vocabulary', () => {
    const arch = describeArchitecture(
      fakeModel({
        format: 'gguf',
        tensors: ggufLlamaTensors(64, 5, 8, 4, 172, 512),
        metadata: llamaMetadata('llama', {
          'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', length: 500 },
        }),
      }),
    )
    expect(arch.vocabSize).toBe(512)
    expect(arch.warnings.join('\n')).toMatch(/500 tokens/)
  })

  it('opens a GGUF of an unknown architecture as unknown, with its geometry keys', () => {
    const arch = describeArchitecture(
      fakeModel({
        format: 'gguf',
        tensors: ggufLlamaTensors(64, 2, 8, 4, 172, 512),
        metadata: {
          'general.architecture': 'falcon',
          'falcon.block_count': 2,
          'falcon.embedding_length': 64,
          'falcon.attention.head_count': 8,
        },
      }),
    )
    expect(arch).toMatchObject({
      family: 'unknown',
      declared: 'falcon',
      layers: 2,
      hiddenSize: 64,
      heads: 8,
      kvHeads: 8,
      headDim: 8,
    })
    expect(Object.values(arch.places).every((p) => p.role === 'other')).toBe(true)
    expect(arch.places['blk.1.attn_q.weight'].layer).toBe(1)
    expect(arch.warnings.join('\n')).toMatch(/'falcon' is not one Whittle knows/)
  })
})
