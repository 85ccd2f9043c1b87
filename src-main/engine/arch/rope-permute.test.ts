import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import type { ModelFiles, TensorEntry } from '../formats/types'
import { describeArchitecture, tensorName } from './index'
import { ggufToHfRows, hfToGgufRows } from './rope-permute'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const shared = path.resolve(repoRoot, '../shared')
const hasShared = existsSync(path.join(shared, 'models/stories260K/model.safetensors'))
if (!hasShared) console.log(`[rope-permute.test] ${shared} not found: skipping the checks against real checkpoints`)

/**
 * numpy's w.reshape(heads, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols), computed literally with
 * strides: element (h, i, s, c) of the swapped view reads element (h, s, i, c) of the reshaped input.
 */
function numpyStylePermute(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const half = rows / heads / 2
  const inStrides = [2 * half * cols, half * cols, cols, 1] // (heads, 2, half, cols)
  const out = new Float32Array(w.length)
  let o = 0
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        for (let c = 0; c < cols; c++)
          out[o++] = w[h * inStrides[0] + s * inStrides[1] + i * inStrides[2] + c * inStrides[3]]
      }
    }
  }
  return out
}

function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = x / 2 ** 32 - 0.5
  }
  return out
}

describe('RoPE row permutation', () => {
  it('moves row s·(d/2) + i of each head to row 2i + s', () => {
    // 2 heads of 4 rows, 1 column: the value is the HF row index.
    const hf = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7])
    expect(Array.from(hfToGgufRows(hf, 8, 1, 2))).toEqual([0, 2, 1, 3, 4, 6, 5, 7])
  })

  it('matches the numpy reshape/swapaxes definition', () => {
    for (const [rows, cols, heads] of [
      [64, 64, 8],
      [32, 64, 4],
      [24, 5, 3],
      [2, 3, 1],
    ]) {
      const w = random(rows * cols, rows * 31 + cols)
      expect(hfToGgufRows(w, rows, cols, heads)).toEqual(numpyStylePermute(w, rows, cols, heads))
    }
  })

  it('round-trips: gguf -> hf undoes hf -> gguf, and the other way', () => {
    const w = random(96 * 7, 3)
    expect(ggufToHfRows(hfToGgufRows(w, 96, 7, 6), 96, 7, 6)).toEqual(w)
    expect(hfToGgufRows(ggufToHfRows(w, 96, 7, 6), 96, 7, 6)).toEqual(w)
    // A real permutation, not the identity.
    expect(hfToGgufRows(w, 96, 7, 6)).not.toEqual(w)
  })

  it('rejects geometry that cannot be split into heads', () => {
    const w = new Float32Array(12)
    expect(() => hfToGgufRows(w, 6, 2, 2)).toThrow(WhittleError) // heads of 3 rows: odd
    expect(() => hfToGgufRows(w, 4, 2, 2)).toThrow(/do not form/)
    expect(() => ggufToHfRows(w, 12, 1, 0)).toThrow(/positive integer/)
    expect(() => ggufToHfRows(w, 12, 1, 5)).toThrow(/heads/)
  })
})

/** Index of the first element whose bit pattern differs, or -1 (toEqual on big arrays is slow). */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i
  return -1
}

/** Every HF tensor equals its GGUF twin bit for bit, q/k after undoing the permutation. */
async function expectSameWeights(hf: ModelFiles, gguf: ModelFiles, heads: number, kvHeads: number): Promise<string[]> {
  const hfArch = describeArchitecture(hf)
  const ggufArch = describeArchitecture(gguf)
  expect(ggufArch.ropeLayout).toBe('gguf')
  expect(hfArch.ropeLayout).toBe('hf')
  const ggufByName = new Map(gguf.tensors.map((t) => [t.name, t]))
  const compared: string[] = []
  for (const t of hf.tensors) {
    const place = hfArch.places[t.name]
    expect(place.role).not.toBe('other')
    const twinName = tensorName(ggufArch, place.layer, place.role)
    expect(twinName, `${t.name} has no GGUF twin`).toBeDefined()
    const twin = ggufByName.get(twinName!) as TensorEntry
    expect(twin.shape).toEqual(t.shape)
    const [ours, theirs] = await Promise.all([readTensorF32(t), readTensorF32(twin)])
    const [rows, cols] = t.shape.length === 2 ? t.shape : [t.shape[0], 1]
    const unpermuted =
      place.role === 'q'
        ? ggufToHfRows(theirs, rows, cols, heads)
        : place.role === 'k'
          ? ggufToHfRows(theirs, rows, cols, kvHeads)
          : theirs
    // Bit patterns, so -0/+0 and NaN payloads count too.
    expect(firstDifference(unpermuted, ours), t.name).toBe(-1)
    if (place.role === 'q' || place.role === 'k')
      expect(firstDifference(theirs, ours), `${t.name} as stored`).not.toBe(-1)
    compared.push(t.name)
  }
  return compared
}

describe.skipIf(!hasShared)('real checkpoints: HF layout vs llama.cpp GGUF', () => {
  it('stories260K: every safetensors tensor equals the GGUF one; output.weight is the tied embedding', async () => {
    const hf = await openModelFiles(path.join(shared, 'models/stories260K'))
    const gguf = await openModelFiles(path.join(shared, 'models/stories260K-gguf/stories260K.gguf'))
    const compared = await expectSameWeights(hf, gguf, 8, 4)
    expect(compared).toHaveLength(47)
    const embed = await readTensorF32(hf.tensors.find((t) => t.name === 'model.embed_tokens.weight')!)
    const output = await readTensorF32(gguf.tensors.find((t) => t.name === 'output.weight')!)
    expect(firstDifference(output, embed)).toBe(-1)
  })

  it('gguf-golden small-llama: BF16 HF weights widen exactly to the F32 GGUF', async () => {
    const golden = path.join(shared, 'reference/gguf-golden')
    const hf = await openModelFiles(path.join(golden, 'small-llama-hf-bf16'))
    expect(hf.tensors.every((t) => t.dtype === 'BF16')).toBe(true)
    const gguf = await openModelFiles(path.join(golden, 'small-llama-f32.gguf'))
    const compared = await expectSameWeights(hf, gguf, 4, 2)
    expect(compared).toHaveLength(gguf.tensors.length)
  })
})
