// How a tensor is stored, when not as plain values: a packed Linear's parts, or a GGUF block type.

import type { TensorStorage } from '../../contract/api'
import type { TensorEntry } from '../formats/types'
import { ggufBlockStorage } from './gguf-block-storage'
import { packedLinearStorage } from './packed-linear-storage'

export async function tensorStorage(entry: TensorEntry): Promise<TensorStorage | undefined> {
  if (entry.packed) return packedLinearStorage(entry.packed)
  return ggufBlockStorage(entry)
}
