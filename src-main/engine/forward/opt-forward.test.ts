// OPT forward pass on tiny random checkpoints against a naive f64 OPT written here from HF's
// modeling_opt: positions read from row t + 2 of embed_positions, LayerNorm before (do_layer_norm_before)
// or after each sublayer, separate biased q/k/v/out_proj, ReLU MLP, final LayerNorm only before-norm, and
// OPT-350m's project_in / project_out around a narrower word embedding, lm_head tied to embed_tokens.

import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { captureCalibration } from '../calibration/capture'
import { loadModel } from '../model/loaded-model'
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
import { OptForward } from './opt-forward'

const H = 32,
  L = 2,
  HEADS = 4,
  HD = 8,
  F = 64,
  V = 50,
  POSITIONS = 16,
  EPS = 1e-5,
  T = 12
type Norm = { w: Float64Array; b: Float64Array }

interface OptLayer {
  attnLn: Norm
  ffnLn: Norm
  q: [Float64Array, Float64Array]
  k: [Float64Array, Float64Array]
  v: [Float64Array, Float64Array]
  o: [Float64Array, Float64Array]
  fc1: [Float64Array, Float64Array]
  fc2: [Float64Array, Float64Array]
}
interface OptParams {
  preNorm: boolean
  /** word_embed_proj_dim */
  E: number
  embed: Float64Array
  positions: Float64Array
  projectIn: Float64Array | null
  projectOut: Float64Array | null
  layers: OptLayer[]
  finalLn: Norm | null
}

function randomOpt(
  seed: number,
  preNorm: boolean,
  E: number,
): { weights: TinyWeights; params: OptParams; config: Record<string, unknown> } {
  const t = new TinyWeights(seed)
  const lin = (name: string, out: number, inp: number, std = 0.25): [Float64Array, Float64Array] => [
    t.add(`${name}.weight`, [out, inp], std),
    t.add(`${name}.bias`, [out], 0.2),
  ]
  const embed = t.add('model.decoder.embed_tokens.weight', [V, E], 1)
  const positions = t.add('model.decoder.embed_positions.weight', [POSITIONS + 2, H], 0.5)
  const projectIn = E !== H ? t.add('model.decoder.project_in.weight', [H, E], 0.4) : null
  const projectOut = E !== H ? t.add('model.decoder.project_out.weight', [E, H], 0.4) : null
  const layers: OptLayer[] = []
  for (let l = 0; l < L; l++) {
    const p = `model.decoder.layers.${l}`
    layers.push({
      attnLn: t.norm(`${p}.self_attn_layer_norm`, H),
      ffnLn: t.norm(`${p}.final_layer_norm`, H),
      q: lin(`${p}.self_attn.q_proj`, H, H),
      k: lin(`${p}.self_attn.k_proj`, H, H),
      v: lin(`${p}.self_attn.v_proj`, H, H),
      o: lin(`${p}.self_attn.out_proj`, H, H),
      fc1: lin(`${p}.fc1`, F, H),
      fc2: lin(`${p}.fc2`, H, F, 0.2),
    })
  }
  const finalLn = preNorm ? t.norm('model.decoder.final_layer_norm', H) : null
  const config = {
    architectures: ['OPTForCausalLM'],
    model_type: 'opt',
    hidden_size: H,
    num_hidden_layers: L,
    num_attention_heads: HEADS,
    ffn_dim: F,
    vocab_size: V,
    max_position_embeddings: POSITIONS,
    word_embed_proj_dim: E,
    do_layer_norm_before: preNorm,
    activation_function: 'relu',
    enable_bias: true,
  }
  return { weights: t, params: { preNorm, E, embed, positions, projectIn, projectOut, layers, finalLn }, config }
}

function naiveOpt(p: OptParams, windows: Int32Array[], inputs?: RecordedInputs, positionOffset = 2): number[][] {
  const ln = (x: Float64Array, n: Norm): Float64Array => layerNorm(x, H, n.w, n.b, EPS)
  return windows.map((tokens) => {
    let x: Float64Array = new Float64Array(T * p.E)
    for (let t = 0; t < T; t++) x.set(p.embed.subarray(tokens[t] * p.E, (tokens[t] + 1) * p.E), t * p.E)
    if (p.projectIn) x = linear(x, p.projectIn, null, p.E, H)
    // OPTLearnedPositionalEmbedding: position ids 0 … T−1 (no padding) read at row id + 2.
    let h = add(x, p.positions.slice(positionOffset * H, (positionOffset + T) * H))
    for (const [l, w] of p.layers.entries()) {
      const a = p.preNorm ? ln(h, w.attnLn) : h
      for (const r of ['q', 'k', 'v']) record(inputs, l, r, a)
      // HF multiplies q_proj's output by hd^-0.5; causalAttention divides the scores by √hd, the same thing.
      const att = causalAttention(
        linear(a, w.q[0], w.q[1], H, H),
        linear(a, w.k[0], w.k[1], H, H),
        linear(a, w.v[0], w.v[1], H, H),
        T,
        HEADS,
        HD,
      )
      record(inputs, l, 'o', att)
      h = add(h, linear(att, w.o[0], w.o[1], H, H))
      if (!p.preNorm) h = ln(h, w.attnLn)
      const m = p.preNorm ? ln(h, w.ffnLn) : h
      record(inputs, l, 'fc1', m)
      const inner = map(linear(m, w.fc1[0], w.fc1[1], H, F), ACTIVATIONS.relu)
      record(inputs, l, 'fc2', inner)
      h = add(h, linear(inner, w.fc2[0], w.fc2[1], F, H))
      if (!p.preNorm) h = ln(h, w.ffnLn)
    }
    if (p.finalLn) h = ln(h, p.finalLn)
    if (p.projectOut) h = linear(h, p.projectOut, null, H, p.E)
    return nextTokenNll(linear(h, p.embed, null, p.E, V), tokens, V)
  })
}

describe('OPT forward pass', () => {
  const bench = tinyModelBench('whittle-opt-')
  const windows = randomWindows(3, T, V, 21)

  const variants = [
    { name: 'LayerNorm before each sublayer (opt-125m and up)', preNorm: true, E: H },
    {
      name: 'LayerNorm after each sublayer, project_in/out around a 16-wide embedding (opt-350m)',
      preNorm: false,
      E: 16,
    },
  ]
  for (const variant of variants) {
    it(`${variant.name}: NLLs and Linear inputs of a naive f64 OPT`, async () => {
      const m = randomOpt(31 + variant.E, variant.preNorm, variant.E)
      await withTinyForward(bench, `opt-${variant.E}`, m.weights, m.config, async (forward) => {
        expect(forward).toBeInstanceOf(OptForward)
        const expected = await expectMatchesNaive(forward, windows, (inputs) => naiveOpt(m.params, windows, inputs), [
          'q',
          'k',
          'v',
          'o',
          'fc1',
          'fc2',
        ])
        // Reading positions from row t instead of t + 2 would have shown.
        expect(largestNllGap(naiveOpt(m.params, windows, undefined, 0), expected)).toBeGreaterThan(1e-2)
      })
    })
  }

  it('calibration capture records each input group once per token, as the naive model computes it', async () => {
    const m = randomOpt(41, true, H)
    const model = await loadModel(await m.weights.write(path.join(bench.dir, 'opt-capture'), m.config))
    const expectedInputs: RecordedInputs = new Map()
    naiveOpt(m.params, windows, expectedInputs)
    const layers = await captureCalibration(bench.pool, model, windows)
    expectCaptureMatches(
      layers,
      expectedInputs,
      { qkv: 'q', o: 'o', gate_up: 'fc1', down: 'fc2' },
      'absmax',
      windows.length * T,
    )
  })
})
