// A GGUF block-quantized tensor's storage: its type, block geometry, and histograms of the per-block scale
// fields (d, and dmin or m where the type has one), read straight from the blocks in bounded chunks.
//
// Where each field sits follows ggml's block structs (ggml-common.h; the comments of the dequant
// references kernels/reference/ggml-dequant-*.ts): most types lead with fp16 d (then fp16 m or dmin);
// Q2_K, Q3_K, Q6_K and the TQ types end with it, so its offset is derived from the block's byte size in
// numerics/ggml-blocks.ts rather than written down a second time; Q8_K leads with an f32 d.

import type { BlockScaleField, GgufBlockStorage } from '../../contract/api'
import { readTensorBytes } from '../formats/read'
import type { TensorEntry } from '../formats/types'
import { bitsPerWeight, ggmlBlockByName, type GgmlBlockInfo } from '../numerics/ggml-blocks'
import { f16ToF32 } from '../numerics/float-encodings'
import { valueHistogram } from './value-histogram'
import { SCALE_BINS } from './packed-linear-storage'

interface ScaleFieldAt {
  field: BlockScaleField['field']
  /** Byte offset inside the block. */
  at: number
  encoding: 'f16' | 'f32'
}

const f16 = (field: ScaleFieldAt['field'], at: number): ScaleFieldAt => ({ field, at, encoding: 'f16' })

/** Where a type's scale fields sit in its block; undefined for a type without whole-field scales. */
export function blockScaleFields(info: GgmlBlockInfo): ScaleFieldAt[] | undefined {
  const end = info.blockBytes
  switch (info.name) {
    case 'Q4_0':
    case 'Q5_0':
    case 'Q8_0':
    case 'Q8_1': // its second half is s = d · Σq, a sum rather than a scale
    case 'IQ4_NL':
    case 'IQ4_XS':
    case 'IQ2_XXS':
    case 'IQ2_XS':
    case 'IQ2_S':
    case 'IQ3_XXS':
    case 'IQ3_S':
    case 'IQ1_S':
      return [f16('d', 0)]
    case 'Q4_1':
    case 'Q5_1':
      return [f16('d', 0), f16('m', 2)]
    case 'Q4_K':
    case 'Q5_K':
      return [f16('d', 0), f16('dmin', 2)]
    case 'Q2_K':
      return [f16('d', end - 4), f16('dmin', end - 2)]
    case 'Q3_K':
    case 'Q6_K':
    case 'TQ1_0':
    case 'TQ2_0':
      return [f16('d', end - 2)]
    case 'Q8_K':
      return [{ field: 'd', at: 0, encoding: 'f32' }]
    default:
      return undefined
  }
}

/** Blocks read per chunk: bounded memory for any tensor size. */
const CHUNK_BLOCKS = 1 << 14

/** The storage of a tensor of a block type (blockElements > 1); undefined for plain scalar dtypes. */
export async function ggufBlockStorage(entry: TensorEntry): Promise<GgufBlockStorage | undefined> {
  const info = ggmlBlockByName(entry.dtype)
  if (!info || info.blockElements <= 1) return undefined
  const blocks = Math.floor(entry.byteLength / info.blockBytes)
  const fields = blockScaleFields(info) ?? []
  const values = fields.map(() => new Float32Array(blocks))
  for (let first = 0; first < blocks; first += CHUNK_BLOCKS) {
    const count = Math.min(CHUNK_BLOCKS, blocks - first)
    const bytes = await readTensorBytes(entry, first * info.blockBytes, count * info.blockBytes)
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    fields.forEach((f, k) => {
      for (let b = 0; b < count; b++) {
        const at = b * info.blockBytes + f.at
        values[k][first + b] = f.encoding === 'f16' ? f16ToF32(view.getUint16(at, true)) : view.getFloat32(at, true)
      }
    })
  }
  return {
    kind: 'gguf-blocks',
    type: info.name,
    label: `${info.name} · ${info.blockElements} per block · ${info.blockBytes} B`,
    blockElements: info.blockElements,
    blockBytes: info.blockBytes,
    blocks,
    bitsPerWeight: bitsPerWeight(info),
    scales: fields.map((f, k) => ({ field: f.field, histogram: valueHistogram(values[k], SCALE_BINS) })),
  }
}
