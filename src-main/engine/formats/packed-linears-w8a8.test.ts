import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { closeFile } from '../io/ranged-file'
import { openModelFiles } from './open'
import { declaredActivations, unpackQuantizedLinears } from './packed-linears'
import { readTensorF32 } from './read'
import { writeSafetensors, type SafetensorsTensorInput } from './safetensors-writer'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-w8a8-read-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

function config(format: string, type: 'int' | 'float', activations: boolean): Record<string, unknown> {
  const args = { num_bits: 8, type, symmetric: true, dynamic: true, strategy: 'token' }
  return {
    quantization_config: {
      quant_method: 'compressed-tensors',
      format,
      config_groups: {
        group_0: {
          targets: ['Linear'],
          weights: { num_bits: 8, type, strategy: 'channel', symmetric: true, dynamic: false },
          input_activations: activations ? args : null,
        },
      },
    },
  }
}

async function open(name: string, tensors: SafetensorsTensorInput[], cfg: Record<string, unknown>) {
  const file = path.join(tmp, `${name}.safetensors`)
  await writeSafetensors(file, tensors, { format: 'pt' })
  const files = await openModelFiles(file)
  return { file, files: { ...files, config: cfg } }
}

const f32 = (v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer)
const i8 = (v: number[]): Uint8Array => new Uint8Array(Int8Array.from(v).buffer)

describe('compressed-tensors int-quantized / float-quantized checkpoints', () => {
  it('decodes I8 codes as (code − zero_point) · scale per output channel, other tensors untouched', async () => {
    const { file, files } = await open(
      'int',
      [
        { name: 'norm.weight', dtype: 'F32', shape: [3], data: f32([1, 2, 3]) },
        { name: 'proj.weight', dtype: 'I8', shape: [2, 3], data: i8([-128, 0, 127, 5, -5, 1]) },
        { name: 'proj.weight_scale', dtype: 'F32', shape: [2, 1], data: f32([0.5, 0.25]) },
        { name: 'proj.weight_zero_point', dtype: 'I8', shape: [2, 1], data: i8([0, 1]) },
      ],
      config('int-quantized', 'int', false),
    )
    try {
      const unpacked = await unpackQuantizedLinears(files)
      expect(unpacked.tensors.map((t) => [t.name, t.dtype])).toEqual([
        ['norm.weight', 'F32'],
        ['proj.weight', 'F32'],
      ])
      const w = unpacked.tensors.find((t) => t.name === 'proj.weight')!
      expect(Array.from(await readTensorF32(w))).toEqual([-64, 0, 63.5, 1, -1.5, 0])
      expect(declaredActivations(files)).toBeNull()
    } finally {
      closeFile(file)
    }
  })

  it('decodes F8_E4M3 values times the row scale and reads the FP8_DYNAMIC activation scheme', async () => {
    // E4M3FN: 0x38 = 1, 0xb8 = −1, 0x7e = 448, 0x01 = 2^-9 (the smallest subnormal).
    const { file, files } = await open(
      'fp8',
      [
        { name: 'proj.weight', dtype: 'F8_E4M3', shape: [2, 2], data: Uint8Array.of(0x38, 0xb8, 0x7e, 0x01) },
        { name: 'proj.weight_scale', dtype: 'F32', shape: [2, 1], data: f32([2, 0.5]) },
      ],
      config('float-quantized', 'float', true),
    )
    try {
      const unpacked = await unpackQuantizedLinears(files)
      expect(Array.from(await readTensorF32(unpacked.tensors[0]))).toEqual([2, -2, 224, 2 ** -10])
      expect(declaredActivations(files)).toBe('fp8-per-token')
      expect(declaredActivations({ config: config('int-quantized', 'int', true) })).toBe('int8-per-token')
    } finally {
      closeFile(file)
    }
  })

  it('refuses a scale that is not one per output channel, or a weight of the wrong dtype, naming the file', async () => {
    const bad = await open(
      'bad-scale',
      [
        { name: 'proj.weight', dtype: 'I8', shape: [2, 2], data: i8([1, 2, 3, 4]) },
        { name: 'proj.weight_scale', dtype: 'F32', shape: [2], data: f32([1, 1]) },
      ],
      config('int-quantized', 'int', true),
    )
    const wrongType = await open(
      'bad-dtype',
      [
        { name: 'proj.weight', dtype: 'I8', shape: [2, 2], data: i8([1, 2, 3, 4]) },
        { name: 'proj.weight_scale', dtype: 'F32', shape: [2, 1], data: f32([1, 1]) },
      ],
      config('float-quantized', 'float', true),
    )
    try {
      const e1 = await unpackQuantizedLinears(bad.files).catch((e: unknown) => e)
      expect(e1).toBeInstanceOf(WhittleError)
      expect((e1 as WhittleError).code).toBe('format')
      expect((e1 as WhittleError).message).toContain('bad-scale.safetensors')
      expect((e1 as WhittleError).message).toMatch(/proj\.weight_scale" has shape \[2\], expected \[2, 1\]/)
      const e2 = await unpackQuantizedLinears(wrongType.files).catch((e: unknown) => e)
      expect((e2 as WhittleError).code).toBe('format')
      expect((e2 as WhittleError).message).toMatch(/proj\.weight" is I8, expected F8_E4M3/)
    } finally {
      closeFile(bad.file)
      closeFile(wrongType.file)
    }
  })
})
