// The sliced Llama forward pass against the plain one, on models built here from the bundled stories260K:
// its first 48 residual coordinates kept everywhere. As a plain Llama that is a model of hidden size 48
// whose norms carry √(64/48) and whose epsilon is scaled by 64/48 (what dividing by the original width
// means); as a sliced model it keeps hidden_size 64 and declares the 48s in `whittle_slicegpt`. The
// sliced copy also stores its MLP-side residual in a cyclically shifted order (o_proj's rows, the
// ffn norm and gate/up's columns permuted, shortcut matrices P and Pᵀ), so a shortcut read the wrong way
// round, a norm dividing by the wrong width or a mis-packed row changes the numbers.

import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SLICEGPT_CONFIG_KEY } from '../arch/sliced-llama'
import { readTensorF32 } from '../formats/read'
import type { TensorEntry } from '../formats/types'
import { loadModel, modelFromFiles, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { createForward } from './index'

const demo = path.resolve(__dirname, '../../../resources/demo/stories260K')
const D = 64,
  d = 48,
  L = 5,
  V = 512

function entry(name: string, shape: number[], values: Float32Array): TensorEntry {
  return {
    name,
    dtype: 'F32',
    shape,
    file: demo,
    offset: 0,
    byteLength: values.byteLength,
    data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  }
}

/** Rows [0, rows) and columns [0, cols) of a row-major matrix with `width` columns. */
function corner(w: Float32Array, width: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) out.set(w.subarray(r * width, r * width + cols), r * cols)
  return out
}

/** The residual coordinate i stored at position (i + 1) mod d. */
const shift = (i: number): number => (i + 1) % d

describe('sliced Llama forward', () => {
  let pool: WorkerPool
  let plain: LoadedModel
  let sliced: LoadedModel

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    const source = await loadModel(demo)
    const read = (name: string): Promise<Float32Array> => readTensorF32(source.entry(name))
    const scale = Math.sqrt(D / d)
    const plainTensors: TensorEntry[] = [],
      slicedTensors: TensorEntry[] = []
    const both = (name: string, shape: number[], values: Float32Array, slicedValues = values): void => {
      plainTensors.push(entry(name, shape, values))
      slicedTensors.push(entry(name, shape, slicedValues))
    }
    const embed = corner(await read('model.embed_tokens.weight'), D, V, d)
    both('model.embed_tokens.weight', [V, d], embed)
    slicedTensors.push(entry('lm_head.weight', [V, d], embed))
    const finalNorm = (await read('model.norm.weight')).subarray(0, d)
    plainTensors.push(
      entry(
        'model.norm.weight',
        [d],
        finalNorm.map((g) => g * scale),
      ),
    )
    slicedTensors.push(entry('model.norm.weight', [d], finalNorm.slice()))
    for (let l = 0; l < L; l++) {
      const p = `model.layers.${l}.`
      for (const m of ['q_proj', 'k_proj', 'v_proj']) {
        const w = await read(`${p}self_attn.${m}.weight`)
        const rows = w.length / D
        both(`${p}self_attn.${m}.weight`, [rows, d], corner(w, D, rows, d))
      }
      const attnNorm = (await read(`${p}input_layernorm.weight`)).subarray(0, d)
      plainTensors.push(
        entry(
          `${p}input_layernorm.weight`,
          [d],
          attnNorm.map((g) => g * scale),
        ),
      )
      slicedTensors.push(entry(`${p}input_layernorm.weight`, [d], attnNorm.slice()))
      // The MLP side: o_proj writes it, the ffn norm and gate/up read it; the sliced copy permuted.
      const o = corner(await read(`${p}self_attn.o_proj.weight`), 64, d, 64)
      const oShifted = new Float32Array(o.length)
      for (let i = 0; i < d; i++) oShifted.set(o.subarray(i * 64, (i + 1) * 64), shift(i) * 64)
      both(`${p}self_attn.o_proj.weight`, [d, 64], o, oShifted)
      const ffnNorm = (await read(`${p}post_attention_layernorm.weight`)).subarray(0, d)
      const ffnShifted = new Float32Array(d)
      for (let i = 0; i < d; i++) ffnShifted[shift(i)] = ffnNorm[i]
      plainTensors.push(
        entry(
          `${p}post_attention_layernorm.weight`,
          [d],
          ffnNorm.map((g) => g * scale),
        ),
      )
      slicedTensors.push(entry(`${p}post_attention_layernorm.weight`, [d], ffnShifted))
      for (const m of ['gate_proj', 'up_proj']) {
        const w = corner(await read(`${p}mlp.${m}.weight`), D, 172, d)
        const shifted = new Float32Array(w.length)
        for (let r = 0; r < 172; r++) for (let i = 0; i < d; i++) shifted[r * d + shift(i)] = w[r * d + i]
        both(`${p}mlp.${m}.weight`, [172, d], w, shifted)
      }
      both(`${p}mlp.down_proj.weight`, [d, 172], corner(await read(`${p}mlp.down_proj.weight`), 172, d, 172))
      // attn_shortcut_Q = P ([in, out]: r · P moves coordinate i to shift(i)), mlp_shortcut_Q = Pᵀ.
      const P = new Float32Array(d * d),
        Pt = new Float32Array(d * d)
      for (let i = 0; i < d; i++) {
        P[i * d + shift(i)] = 1
        Pt[shift(i) * d + i] = 1
      }
      slicedTensors.push(entry(`${p}attn_shortcut_Q`, [d, d], P), entry(`${p}mlp_shortcut_Q`, [d, d], Pt))
    }
    const config = source.files.config!
    plain = modelFromFiles({
      ...source.files,
      tensors: plainTensors,
      config: { ...config, hidden_size: d, head_dim: 8, rms_norm_eps: (1e-5 * D) / d },
    })
    sliced = modelFromFiles({
      ...source.files,
      tensors: slicedTensors,
      config: {
        ...config,
        head_dim: 8,
        tie_word_embeddings: false,
        [SLICEGPT_CONFIG_KEY]: { sliced_dims: Array(2 * L + 1).fill(d), slicing: 0.25 },
      },
    })
  })
  afterAll(() => pool?.close())

  it('computes what the plain forward pass computes for the same function', async () => {
    expect(sliced.arch.slicing?.dims).toEqual(Array(11).fill(d))
    expect(sliced.arch.hiddenSize).toBe(D)
    const windows = [0, 1, 2].map((w) => Int32Array.from({ length: 64 }, (_, t) => (w * 977 + t * 131 + 7) % V))
    const run = async (m: LoadedModel): Promise<Float64Array[]> => {
      const f = await createForward(pool, m)
      try {
        return await f.windowNll(windows)
      } finally {
        f.close()
      }
    }
    const want = await run(plain),
      got = await run(sliced)
    for (let w = 0; w < windows.length; w++)
      for (let t = 0; t < want[w].length; t++) expect(Math.abs(got[w][t] - want[w][t])).toBeLessThan(1e-4)
    // Hidden states between blocks keep the full width, zero beyond the slice.
    const f = await createForward(pool, sliced)
    try {
      const hidden = await f.embed(windows)
      expect(hidden.length).toBe(3 * 64 * D)
      await f.block(0, hidden, 64)
      for (let r = 0; r < 3 * 64; r++) for (let i = d; i < D; i++) expect(hidden[r * D + i]).toBe(0)
    } finally {
      f.close()
    }
  })
})
