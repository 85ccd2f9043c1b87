// The readers against real files in ../shared: the stories260K checkpoint (HF folder and llama.cpp's GGUF
// of it), its tokenizer against the reference token ids, and llama.cpp's own quantizations of a small
// Llama, which must dequantize to within each format's error bound of the F32 original.

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ggufToHfRows } from '../arch/rope-permute'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { openModelFiles } from './open'
import { readGguf, readGgufArray } from './gguf'
import { loadTokenizer } from './hf-folder'
import { readTensorF32 } from './read'
import type { ModelFiles, TensorEntry } from './types'

if (!hasShared) console.log(`[formats/shared-files.test] ${SKIP_SHARED}`)

const byName = (m: ModelFiles, name: string): TensorEntry => {
  const t = m.tensors.find((e) => e.name === name)
  if (!t) throw new Error(`no tensor ${name}`)
  return t
}

/** GGUF (llama.cpp) tensor name -> HF name, for the Llama tensors these files hold. */
function hfName(gguf: string): string {
  const fixed: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output.weight': 'lm_head.weight',
    'output_norm.weight': 'model.norm.weight',
  }
  if (fixed[gguf]) return fixed[gguf]
  const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(gguf)
  if (!m) throw new Error(`unexpected tensor ${gguf}`)
  const part: Record<string, string> = {
    attn_q: 'self_attn.q_proj',
    attn_k: 'self_attn.k_proj',
    attn_v: 'self_attn.v_proj',
    attn_output: 'self_attn.o_proj',
    ffn_gate: 'mlp.gate_proj',
    ffn_up: 'mlp.up_proj',
    ffn_down: 'mlp.down_proj',
    attn_norm: 'input_layernorm',
    ffn_norm: 'post_attention_layernorm',
  }
  return `model.layers.${m[1]}.${part[m[2]]}.weight`
}

/** A GGUF tensor in HF layout: q and k rows un-permuted (llama.cpp interleaves each head's RoPE pairs). */
async function asHf(t: TensorEntry, heads: number, kvHeads: number): Promise<Float32Array> {
  const w = await readTensorF32(t)
  const [rows, cols] = t.shape
  if (t.name.endsWith('attn_q.weight')) return ggufToHfRows(w, rows, cols, heads)
  if (t.name.endsWith('attn_k.weight')) return ggufToHfRows(w, rows, cols, kvHeads)
  return w
}

function firstMismatch(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i
  return -1
}

describe.skipIf(!hasShared)('stories260K', () => {
  const folder = hasShared ? shared('models', 'stories260K') : ''
  const ggufPath = hasShared ? shared('models', 'stories260K-gguf', 'stories260K.gguf') : ''

  it('opens the HF folder: 47 tensors whose sizes add up to the parameters the config implies', async () => {
    const m = await openModelFiles(folder)
    expect(m.format).toBe('safetensors')
    expect(m.tensors).toHaveLength(47)
    expect(m.tokenizerPath).toBe(shared('models', 'stories260K', 'tokenizer.json'))
    expect(m.generationConfig).not.toBeNull()
    const c = m.config as Record<string, number>
    const h = c.hidden_size,
      f = c.intermediate_size,
      kv = (h / c.num_attention_heads) * c.num_key_value_heads
    const perLayer = 2 * h * h + 2 * kv * h + 3 * f * h + 2 * h
    const expected = c.vocab_size * h + c.num_hidden_layers * perLayer + h // tied: no separate lm_head
    const counted = m.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0)
    expect(counted).toBe(expected)
    expect(counted).toBe(260_032)
    expect(m.tensors.every((t) => t.dtype === 'F32' && t.byteLength === 4 * t.shape.reduce((a, b) => a * b, 1))).toBe(
      true,
    )
  })

  it('opens the GGUF and finds the same weights, q/k in llama.cpp row order', async () => {
    const hf = await openModelFiles(folder)
    const g = await openModelFiles(ggufPath)
    expect(g.format).toBe('gguf')
    expect(g.tensors).toHaveLength(48) // output.weight stored explicitly
    const heads = g.metadata['llama.attention.head_count'] as number
    const kvHeads = g.metadata['llama.attention.head_count_kv'] as number
    expect([heads, kvHeads]).toEqual([8, 4])
    for (const t of g.tensors) {
      // output.weight is the tied embedding.
      const hfTensor = byName(hf, t.name === 'output.weight' ? 'model.embed_tokens.weight' : hfName(t.name))
      expect(t.shape, t.name).toEqual(hfTensor.shape)
      expect(firstMismatch(await asHf(t, heads, kvHeads), await readTensorF32(hfTensor)), t.name).toBe(-1)
    }
  })

  it('reads the GGUF tokenizer arrays, which agree with tokenizer.json', async () => {
    const g = await readGguf(ggufPath)
    expect(g.metadata['tokenizer.ggml.tokens']).toEqual({ type: 'array', itemType: 'string', length: 512 })
    const tokens = (await readGgufArray(ggufPath, 'tokenizer.ggml.tokens', g)) as string[]
    const vocab = JSON.parse(readFileSync(shared('models', 'stories260K', 'tokenizer.json'), 'utf8')).model
      .vocab as Record<string, number>
    for (const [piece, id] of Object.entries(vocab)) expect(tokens[id]).toBe(piece)
    const types = await readGgufArray(ggufPath, 'tokenizer.ggml.token_type', g)
    const scores = await readGgufArray(ggufPath, 'tokenizer.ggml.scores', g)
    expect(types).toBeInstanceOf(Int32Array)
    expect(scores).toBeInstanceOf(Float32Array)
    expect((scores as Float32Array).length).toBe(512)
    // llama.cpp token types: 2 unknown, 3 control, 6 byte.
    expect(Array.from((types as Int32Array).subarray(0, 4))).toEqual([2, 3, 3, 6])
    tokens.forEach((t, i) => expect((types as Int32Array)[i] === 6, t).toBe(/^<0x[0-9A-F]{2}>$/.test(t)))
  })

  it('tokenizes the eval text into exactly the reference ids', async () => {
    const tokenizer = await loadTokenizer(folder)
    const text = readFileSync(shared('text', 'tinystories_eval.txt'), 'utf8')
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids
    const reference = referenceIds('tinystories_eval')
    expect(reference[0]).toBe(1) // BOS
    expect(ids.length).toBe(reference.length - 1)
    let mismatch = -1
    for (let i = 0; i < ids.length; i++)
      if (ids[i] !== reference[i + 1]) {
        mismatch = i
        break
      }
    expect(mismatch).toBe(-1)
  })
})

// ---- quantization error bounds, derived per block from the F32 data and the block format ----

/** binary16 keeps 11 significant bits: storing a positive scale in it moves it by at most this relative amount. */
const F16_REL = 2 ** -11
/** f32 arithmetic slack on the decode itself. */
const F32_REL = 2 ** -20

const absmax = (x: Float32Array): number => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0)

/**
 * Q8_0: d = absmax/127 and q = round(x/d) with |q| ≤ 127, so |x − d·q| ≤ d/2; d is then stored as fp16,
 * which moves each value by at most |q|·d·2^-11 ≤ 127·d·2^-11.
 */
function boundQ8_0(block: Float32Array): Float32Array {
  const d = absmax(block) / 127
  return new Float32Array(block.length).fill(d * (0.5 + 127 * F16_REL) + absmax(block) * F32_REL)
}

/**
 * Q4_0: d = m/−8 for the largest-magnitude element m, levels d·(q − 8) for q in 0..15, i.e. −8d..7d. The
 * side of m reaches −8d exactly; the other side is clamped at 7d although it may reach 8|d|. Rounding
 * costs |d|/2, the clamp at most |d|; fp16 storage of d adds at most 8·|d|·2^-11.
 */
function boundQ4_0(block: Float32Array): Float32Array {
  const d = absmax(block) / 8
  return new Float32Array(block.length).fill(d * (1 + 8 * F16_REL) + absmax(block) * F32_REL)
}

/**
 * Q4_K: 8 sub-blocks of 32 share fp16 super-scales d and dmin; sub-block j stores 6-bit sc_j and m_j and
 * decodes x = d·sc_j·q − dmin·m_j, q in 0..15. A sub-block spanning [lo, hi] (lo = min(x, 0), since the
 * offset is never positive) needs a step of (hi − lo)/15; rounding to it costs half a step, and the
 * quantizer's weighted search may trade up to one step. Quantizing the scale to 6 bits of the largest
 * sub-block scale S (d = S/63) shifts the step by ≤ d/2, i.e. a value by ≤ 15·d/2; the min likewise by
 * ≤ dmin/2 with dmin = (largest −lo)/63. fp16 storage of d and dmin adds their 2^-11 relative error.
 */
function boundQ4_K(block: Float32Array): Float32Array {
  const out = new Float32Array(256)
  const steps: number[] = []
  const mins: number[] = []
  for (let j = 0; j < 8; j++) {
    const sub = block.subarray(32 * j, 32 * j + 32)
    const lo = Math.min(0, ...sub)
    const hi = Math.max(...sub)
    steps.push((hi - lo) / 15)
    mins.push(-lo)
  }
  const d = Math.max(...steps) / 63
  const dmin = Math.max(...mins) / 63
  for (let j = 0; j < 8; j++) {
    const b = steps[j] + (15 * d) / 2 + dmin / 2 + (15 * steps[j] + mins[j]) * F16_REL + absmax(block) * F32_REL
    out.fill(b, 32 * j, 32 * j + 32)
  }
  return out
}

/**
 * Q6_K: 16 sub-blocks of 16 with int8 scales under one fp16 d; x = d·sc_j·q, q in −32..31. The largest
 * magnitude a of a sub-block maps near −32, so the step is about a/32 (the quantizer's search may shrink
 * the divisor to 31.1); values on the other side clamp at +31, costing up to one step. Scales quantize
 * to d = S/128 of the largest scale S, shifting a value by ≤ 32·d/2; fp16 storage adds 2^-11 relative.
 */
function boundQ6_K(block: Float32Array): Float32Array {
  const out = new Float32Array(256)
  const steps: number[] = []
  for (let j = 0; j < 16; j++) steps.push(absmax(block.subarray(16 * j, 16 * j + 16)) / 31)
  const d = Math.max(...steps) / 128
  for (let j = 0; j < 16; j++) {
    out.fill(steps[j] + (32 * d) / 2 + 32 * steps[j] * F16_REL + absmax(block) * F32_REL, 16 * j, 16 * j + 16)
  }
  return out
}

const GOLDEN: { type: string; block: number; bound: (b: Float32Array) => Float32Array }[] = [
  { type: 'Q8_0', block: 32, bound: boundQ8_0 },
  { type: 'Q4_0', block: 32, bound: boundQ4_0 },
  { type: 'Q4_K', block: 256, bound: boundQ4_K },
  { type: 'Q6_K', block: 256, bound: boundQ6_K },
]

describe.skipIf(!hasShared)('GGUF goldens (llama.cpp quantizations of small-llama)', () => {
  const golden = (name: string): string => shared('reference', 'gguf-golden', name)

  it('the F32 GGUF equals the HF BF16 copy exactly, q/k un-permuted', async () => {
    const g = await openModelFiles(golden('small-llama-f32.gguf'))
    const hf = await openModelFiles(golden('small-llama-hf-bf16'))
    expect(hf.tensors.every((t) => t.dtype === 'BF16')).toBe(true)
    expect(g.tensors).toHaveLength(hf.tensors.length)
    const heads = g.metadata['llama.attention.head_count'] as number
    const kvHeads = g.metadata['llama.attention.head_count_kv'] as number
    for (const t of g.tensors) {
      const h = byName(hf, hfName(t.name))
      expect(t.shape, t.name).toEqual(h.shape)
      expect(firstMismatch(await asHf(t, heads, kvHeads), await readTensorF32(h)), t.name).toBe(-1)
    }
  })

  for (const { type, block, bound } of GOLDEN) {
    it(`${type} dequantizes to within the format's per-block bound of the F32 weights`, async () => {
      const f32 = await openModelFiles(golden('small-llama-f32.gguf'))
      const q = await openModelFiles(golden(`small-llama-${type}.gguf`))
      expect(q.tensors.map((t) => t.name).sort()).toEqual(f32.tensors.map((t) => t.name).sort())
      let worst = 0
      for (const t of q.tensors) {
        const x = await readTensorF32(byName(f32, t.name))
        const y = await readTensorF32(t)
        if (t.shape.length === 1) {
          expect(t.dtype).toBe('F32') // --pure keeps 1-D norms in F32
          expect(firstMismatch(x, y)).toBe(-1)
          continue
        }
        expect(t.dtype, t.name).toBe(type)
        expect(y.length).toBe(x.length)
        for (let b = 0; b < x.length; b += block) {
          const bounds = bound(x.subarray(b, b + block))
          for (let i = 0; i < block; i++) {
            const err = Math.abs(x[b + i] - y[b + i])
            if (!(err <= bounds[i]))
              expect.fail(`${t.name}[${b + i}]: |${x[b + i]} − ${y[b + i]}| = ${err} > bound ${bounds[i]}`)
            worst = Math.max(worst, err / bounds[i])
          }
        }
      }
      // The bound must be neither violated nor vacuous: real errors come within a factor of a few of it.
      // (Measured against llama.cpp's files: Q8_0 0.96, Q4_0 1.00, Q4_K 0.77, Q6_K 0.54 of the bound.)
      expect(worst, `${type}: worst error / bound`).toBeGreaterThan(0.2)
      expect(worst, `${type}: worst error / bound`).toBeLessThanOrEqual(1)
    })
  }
})
