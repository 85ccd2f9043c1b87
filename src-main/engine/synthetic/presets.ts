// Shapes of the synthetic models used in tests and benchmarks: real architectures' geometry, random weights.

export interface LlamaPreset {
  hiddenSize: number
  layers: number
  heads: number
  kvHeads: number
  intermediateSize: number
  vocabSize: number
  maxPositions: number
  tiedEmbeddings: boolean
  rmsNormEps: number
  ropeTheta: number
}

export const PRESETS = {
  /** Small enough to generate in milliseconds inside unit tests; GQA like the real ones. */
  'tiny-llama-test': {
    hiddenSize: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediateSize: 176,
    vocabSize: 256,
    maxPositions: 256,
    tiedEmbeddings: false,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
  },
  /** TinyLlama-1.1B (TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T). */
  'tinyllama-1.1b': {
    hiddenSize: 2048,
    layers: 22,
    heads: 32,
    kvHeads: 4,
    intermediateSize: 5632,
    vocabSize: 32000,
    maxPositions: 2048,
    tiedEmbeddings: false,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
  },
  /** Llama-2-7B. */
  'llama-7b': {
    hiddenSize: 4096,
    layers: 32,
    heads: 32,
    kvHeads: 32,
    intermediateSize: 11008,
    vocabSize: 32000,
    maxPositions: 4096,
    tiedEmbeddings: false,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
  },
  /** Llama-2-70B (grouped-query attention): for opening a sharded index at scale, not for generating weights. */
  'llama-70b': {
    hiddenSize: 8192,
    layers: 80,
    heads: 64,
    kvHeads: 8,
    intermediateSize: 28672,
    vocabSize: 32000,
    maxPositions: 4096,
    tiedEmbeddings: false,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
  },
} as const satisfies Record<string, LlamaPreset>

export type PresetName = keyof typeof PRESETS

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name)
}
