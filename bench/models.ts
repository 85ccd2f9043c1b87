// Synthetic models for benchmarks: random weights in real shapes, generated once into bench/.models
// (git-ignored) and reused while their stamp says they are complete.

import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateLlamaModel } from '../src-main/engine/synthetic/generate'
import { PRESETS } from '../src-main/engine/synthetic/presets'

export const MODELS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '.models')

export async function syntheticModel(preset: keyof typeof PRESETS, dtype: 'F32' | 'BF16' | 'F16'): Promise<string> {
  const dir = path.join(MODELS_DIR, `${preset}-${dtype.toLowerCase()}`)
  await generateLlamaModel(dir, preset, { dtype, seed: 1, onProgress: undefined })
  return dir
}
