// Test support: ModelFiles built in memory from tensor names and shapes, so adapters can be exercised
// against every family and every kind of bad config without writing files.

import type { ModelFiles, TensorEntry } from '../../formats/types'

export const FAKE_DIR = '/models/fake'

export interface FakeModelSpec {
  format?: ModelFiles['format']
  tensors: [name: string, shape: number[]][]
  config?: Record<string, unknown> | null
  metadata?: Record<string, unknown>
}

export function fakeModel(spec: FakeModelSpec): ModelFiles {
  const format = spec.format ?? 'safetensors'
  const file = `${FAKE_DIR}/${format === 'gguf' ? 'model.gguf' : 'model.safetensors'}`
  let offset = 0
  const tensors: TensorEntry[] = spec.tensors.map(([name, shape]) => {
    const byteLength = shape.reduce((a, b) => a * b, 1) * 4
    const entry: TensorEntry = { name, dtype: 'F32', shape, file, offset, byteLength }
    offset += byteLength
    return entry
  })
  return {
    format,
    path: FAKE_DIR,
    files: [file],
    tensors,
    metadata: spec.metadata ?? {},
    config: spec.config ?? null,
    generationConfig: null,
    tokenizerPath: null,
    sizeOnDisk: offset,
  }
}

/** Geometry of a test model, named as in HF configs. */
export interface FakeGeometry {
  hidden: number
  layers: number
  heads: number
  kvHeads: number
  inter: number
  vocab: number
}

/** HF Llama tensor names and shapes, written out from transformers' LlamaForCausalLM module tree. */
export function hfLlamaTensors(
  g: FakeGeometry,
  opts: { lmHead?: boolean; qkvBias?: boolean } = {},
): [string, number[]][] {
  const headDim = g.hidden / g.heads
  const out: [string, number[]][] = [['model.embed_tokens.weight', [g.vocab, g.hidden]]]
  for (let l = 0; l < g.layers; l++) {
    const p = `model.layers.${l}.`
    out.push(
      [`${p}self_attn.q_proj.weight`, [g.heads * headDim, g.hidden]],
      [`${p}self_attn.k_proj.weight`, [g.kvHeads * headDim, g.hidden]],
      [`${p}self_attn.v_proj.weight`, [g.kvHeads * headDim, g.hidden]],
      [`${p}self_attn.o_proj.weight`, [g.hidden, g.heads * headDim]],
      [`${p}mlp.gate_proj.weight`, [g.inter, g.hidden]],
      [`${p}mlp.up_proj.weight`, [g.inter, g.hidden]],
      [`${p}mlp.down_proj.weight`, [g.hidden, g.inter]],
      [`${p}input_layernorm.weight`, [g.hidden]],
      [`${p}post_attention_layernorm.weight`, [g.hidden]],
    )
    if (opts.qkvBias) {
      out.push(
        [`${p}self_attn.q_proj.bias`, [g.heads * headDim]],
        [`${p}self_attn.k_proj.bias`, [g.kvHeads * headDim]],
        [`${p}self_attn.v_proj.bias`, [g.kvHeads * headDim]],
      )
    }
  }
  out.push(['model.norm.weight', [g.hidden]])
  if (opts.lmHead) out.push(['lm_head.weight', [g.vocab, g.hidden]])
  return out
}

export function hfLlamaConfig(g: FakeGeometry, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: g.hidden,
    intermediate_size: g.inter,
    num_hidden_layers: g.layers,
    num_attention_heads: g.heads,
    num_key_value_heads: g.kvHeads,
    vocab_size: g.vocab,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    tie_word_embeddings: true,
    ...extra,
  }
}
