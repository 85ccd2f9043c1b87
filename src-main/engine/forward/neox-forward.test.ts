// GPT-NeoX forward pass on tiny random checkpoints against a naive f64 NeoX written here from HF's
// modeling_gpt_neox: query_key_value viewed per head as [q_h | k_h | v_h], rotate_half rotary on the first
// rotary_ndims = head_size·rotary_pct dims of q and k, parallel (x + attn(ln1 x) + mlp(ln2 x)) or
// sequential residual, exact-erf GELU, untied embed_out.

import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { captureCalibration } from '../calibration/capture'
import { WhittleError } from '../errors'
import { loadModel } from '../model/loaded-model'
import { createForward } from '.'
import {
  ACTIVATIONS,
  add,
  causalAttention,
  expectCaptureMatches,
  expectMatchesNaive,
  largestNllGap,
  layerNorm,
  linear,
  map,
  nextTokenNll,
  randomWindows,
  record,
  tinyModelBench,
  TinyWeights,
  withTinyForward,
  type RecordedInputs,
} from './testing/naive-reference'
import { NeoxForward } from './neox-forward'

const H = 32,
  L = 2,
  HEADS = 4,
  HD = 8,
  F = 64,
  V = 50,
  EPS = 1e-5,
  BASE = 10000,
  T = 12
type Norm = { w: Float64Array; b: Float64Array }
type Lin = [Float64Array, Float64Array]

interface NeoxLayer {
  ln1: Norm
  ln2: Norm
  qkv: Lin
  dense: Lin
  up: Lin
  down: Lin
}
interface NeoxParams {
  parallel: boolean
  rotaryPct: number
  embedIn: Float64Array
  layers: NeoxLayer[]
  finalLn: Norm
  embedOut: Float64Array
}

function randomNeox(
  seed: number,
  parallel: boolean,
  rotaryPct: number,
): { weights: TinyWeights; params: NeoxParams; config: Record<string, unknown> } {
  const t = new TinyWeights(seed)
  const lin = (name: string, out: number, inp: number, std = 0.25): Lin => [
    t.add(`${name}.weight`, [out, inp], std),
    t.add(`${name}.bias`, [out], 0.2),
  ]
  const embedIn = t.add('gpt_neox.embed_in.weight', [V, H], 1)
  const layers: NeoxLayer[] = []
  for (let l = 0; l < L; l++) {
    const p = `gpt_neox.layers.${l}`
    layers.push({
      ln1: t.norm(`${p}.input_layernorm`, H),
      ln2: t.norm(`${p}.post_attention_layernorm`, H),
      qkv: lin(`${p}.attention.query_key_value`, 3 * H, H, 0.35),
      dense: lin(`${p}.attention.dense`, H, H),
      up: lin(`${p}.mlp.dense_h_to_4h`, F, H),
      down: lin(`${p}.mlp.dense_4h_to_h`, H, F, 0.2),
    })
  }
  const finalLn = t.norm('gpt_neox.final_layer_norm', H)
  const embedOut = t.add('embed_out.weight', [V, H], 0.5)
  const config = {
    architectures: ['GPTNeoXForCausalLM'],
    model_type: 'gpt_neox',
    hidden_size: H,
    num_hidden_layers: L,
    num_attention_heads: HEADS,
    intermediate_size: F,
    vocab_size: V,
    max_position_embeddings: 64,
    rotary_pct: rotaryPct,
    rotary_emb_base: BASE,
    layer_norm_eps: EPS,
    use_parallel_residual: parallel,
    hidden_act: 'gelu',
    tie_word_embeddings: false,
  }
  return { weights: t, params: { parallel, rotaryPct, embedIn, layers, finalLn, embedOut }, config }
}

/** HF apply_rotary_pos_emb on the first rd dims of each head of x [T, HEADS·HD], in place. */
function rotate(x: Float64Array, rd: number): void {
  const half = rd / 2
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < HEADS; h++) {
      const base = t * H + h * HD
      for (let i = 0; i < half; i++) {
        const angle = t / BASE ** ((2 * i) / rd)
        const c = Math.cos(angle),
          s = Math.sin(angle)
        const a = x[base + i],
          b = x[base + half + i]
        // x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1]
        x[base + i] = a * c - b * s
        x[base + half + i] = b * c + a * s
      }
    }
  }
}

function naiveNeox(p: NeoxParams, windows: Int32Array[], inputs?: RecordedInputs): number[][] {
  const ln = (x: Float64Array, n: Norm): Float64Array => layerNorm(x, H, n.w, n.b, EPS)
  const rd = Math.floor(HD * p.rotaryPct)
  return windows.map((tokens) => {
    let h: Float64Array = new Float64Array(T * H)
    for (let t = 0; t < T; t++) h.set(p.embedIn.subarray(tokens[t] * H, (tokens[t] + 1) * H), t * H)
    for (const [l, w] of p.layers.entries()) {
      const a = ln(h, w.ln1)
      record(inputs, l, 'qkv', a)
      const qkv = linear(a, w.qkv[0], w.qkv[1], H, 3 * H)
      // qkv.view(T, heads, 3·head_size): q, k, v are consecutive head_size slices within each head.
      const [q, k, v] = [0, 1, 2].map((part) => {
        const y = new Float64Array(T * H)
        for (let t = 0; t < T; t++)
          for (let hh = 0; hh < HEADS; hh++)
            for (let d = 0; d < HD; d++) y[t * H + hh * HD + d] = qkv[t * 3 * H + hh * 3 * HD + part * HD + d]
        return y
      })
      rotate(q, rd)
      rotate(k, rd)
      const att = causalAttention(q, k, v, T, HEADS, HD)
      record(inputs, l, 'o', att)
      const attnOut = linear(att, w.dense[0], w.dense[1], H, H)
      const mlp = (x: Float64Array): Float64Array => {
        record(inputs, l, 'fc1', x)
        const inner = map(linear(x, w.up[0], w.up[1], H, F), ACTIVATIONS.gelu)
        record(inputs, l, 'fc2', inner)
        return linear(inner, w.down[0], w.down[1], F, H)
      }
      if (p.parallel) {
        h = add(mlp(ln(h, w.ln2)), attnOut, h)
      } else {
        const mid = add(attnOut, h)
        h = add(mlp(ln(mid, w.ln2)), mid)
      }
    }
    return nextTokenNll(linear(ln(h, p.finalLn), p.embedOut, null, H, V), tokens, V)
  })
}

describe('GPT-NeoX forward pass', () => {
  const bench = tinyModelBench('whittle-neox-')
  const windows = randomWindows(3, T, V, 5)

  const variants = [
    { parallel: true, rotaryPct: 0.25 },
    { parallel: false, rotaryPct: 0.25 },
    { parallel: true, rotaryPct: 1.0 },
    { parallel: false, rotaryPct: 0.5 },
  ]
  for (const { parallel, rotaryPct } of variants) {
    it(`${parallel ? 'parallel' : 'sequential'} residual, rotary_pct ${rotaryPct}: NLLs and Linear inputs of a naive f64 NeoX`, async () => {
      const m = randomNeox(101, parallel, rotaryPct)
      await withTinyForward(bench, `neox-${parallel}-${rotaryPct}`, m.weights, m.config, async (forward) => {
        expect(forward).toBeInstanceOf(NeoxForward)
        const expected = await expectMatchesNaive(forward, windows, (inputs) => naiveNeox(m.params, windows, inputs), [
          'qkv',
          'o',
          'fc1',
          'fc2',
        ])
        // The same weights read with the other residual, or the other rotary share, disagree: the test sees both.
        expect(largestNllGap(naiveNeox({ ...m.params, parallel: !parallel }, windows), expected)).toBeGreaterThan(1e-2)
        expect(
          largestNllGap(naiveNeox({ ...m.params, rotaryPct: rotaryPct === 1 ? 0.25 : 1 }, windows), expected),
        ).toBeGreaterThan(1e-2)
      })
    })
  }

  it('calibration capture records the fused q/k/v input and the MLP inputs', async () => {
    const m = randomNeox(7, true, 0.25)
    const model = await loadModel(await m.weights.write(path.join(bench.dir, 'neox-capture'), m.config))
    const expectedInputs: RecordedInputs = new Map()
    naiveNeox(m.params, windows, expectedInputs)
    const layers = await captureCalibration(bench.pool, model, windows, { hessian: true })
    expectCaptureMatches(
      layers,
      expectedInputs,
      { qkv: 'qkv', o: 'o', gate_up: 'fc1', down: 'fc2' },
      'sumSq',
      windows.length * T,
    )
    for (const stats of layers) {
      for (const s of Object.values(stats!))
        // The Hessian sums each chunk of tokens in f32 (kernels/reference/hessian.ts), Σx² in f64.
        for (let i = 0; i < s.channels; i++)
          expect(Math.abs(s.hessian![i * s.channels + i] - s.sumSq[i])).toBeLessThan(1e-6 * Math.max(1, s.sumSq[i]))
    }
  })

  it('refuses rotary dims that cannot be rotated in pairs', async () => {
    const m = randomNeox(3, true, 0.375) // 8 · 0.375 = 3 dims
    const model = await loadModel(await m.weights.write(path.join(bench.dir, 'neox-odd'), m.config))
    const err = await createForward(bench.pool, model).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WhittleError)
    expect((err as WhittleError).code).toBe('unsupported')
    expect((err as WhittleError).message).toMatch(/config\.json: an odd number of rotary dims/)
  })
})
