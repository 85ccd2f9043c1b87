// A packed Linear's real storage: its parts as the checkpoint holds them, the declared quantization, and
// counts of its integer codes and zero points and a histogram of its scales, read from the parts
// themselves (not from the decoded weight). Bit layouts: numerics/gptq-pack.ts, compressed-tensors-pack.ts.

import type { PackedLinearStorage, StoredPart } from '../../contract/api'
import { packedLinearLabel } from '../formats/packed-linear-label'
import { readTensorBytes, readTensorF32 } from '../formats/read'
import type { PackedLinearLayout, TensorEntry } from '../formats/types'
import { unpackColsInt32, unpackRowsInt32 } from '../numerics/bit-fields'
import { unpackGptqWeight, unpackGptqZeros } from '../numerics/gptq-pack'
import { valueHistogram } from './value-histogram'

/** Bins of the scale histogram. */
export const SCALE_BINS = 64

async function int32s(e: TensorEntry): Promise<Int32Array> {
  const b = await readTensorBytes(e, 0, e.byteLength)
  return new Int32Array(b.slice().buffer)
}

function countCodes(codes: ArrayLike<number>, bits: number): number[] {
  const counts = new Array<number>(1 << bits).fill(0)
  for (let i = 0; i < codes.length; i++) counts[codes[i]]++
  return counts
}

function part(e: TensorEntry, role: StoredPart['role']): StoredPart {
  return { name: e.name, role, dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength }
}

/** True when g_idx is not input i → group floor(i / groupSize), i.e. the inputs were regrouped (act-order). */
function isRegrouped(gIdx: Int32Array, groupSize: number): boolean {
  if (groupSize <= 0) return gIdx.some((g) => g !== 0)
  return gIdx.some((g, i) => g !== Math.floor(i / groupSize))
}

export async function packedLinearStorage(layout: PackedLinearLayout): Promise<PackedLinearStorage> {
  const { rows, cols, bits } = layout
  const gIdx = layout.gIdx ? await int32s(layout.gIdx) : null
  const actOrder = layout.actOrder || (gIdx !== null && isRegrouped(gIdx, layout.groupSize))
  let codes: Uint8Array
  let zeros: ArrayLike<number> | null = null
  let groups: number
  if (layout.scheme === 'gptq') {
    groups = layout.scales.shape[0]
    codes = unpackGptqWeight(await int32s(layout.codes), rows, cols, bits)
    if (layout.zeros) zeros = unpackGptqZeros(await int32s(layout.zeros), groups, rows, bits, layout.gptqFormat!)
  } else {
    groups = layout.scales.shape[1]
    codes = unpackRowsInt32(await int32s(layout.codes), rows, cols, bits)
    if (layout.zeros) zeros = unpackColsInt32(await int32s(layout.zeros), rows, groups, bits)
  }
  const parts = [
    part(layout.codes, 'codes'),
    part(layout.scales, 'scales'),
    ...(layout.zeros ? [part(layout.zeros, 'zeros')] : []),
    ...(layout.gIdx ? [part(layout.gIdx, 'g_idx')] : []),
    ...(layout.weightShape ? [part(layout.weightShape, 'shape')] : []),
  ]
  const bytes = parts.reduce((a, p) => a + p.byteLength, 0)
  return {
    kind: 'packed-linear',
    scheme: layout.scheme,
    label: packedLinearLabel({ ...layout, actOrder }),
    bits,
    groupSize: layout.groupSize,
    groups,
    actOrder,
    symmetric: layout.symmetric,
    parts,
    bitsPerWeight: (8 * bytes) / (rows * cols),
    codes: countCodes(codes, bits),
    zeros: zeros ? countCodes(zeros, bits) : null,
    scales: valueHistogram(await readTensorF32(layout.scales), SCALE_BINS),
  }
}
