// A whole tensor as f32, decoded by the WASM kernels where the dtype has one (BF16, F16, the GGUF block
// types) and by the TS reference decoders otherwise, or when kernel memory cannot hold it. Bit-identical
// to readTensorF32 (the kernels and their twins are held to that in kernels/test); several times faster.

import { readTensorF32 } from '../formats/read'
import type { TensorEntry } from '../formats/types'
import { loadTensor } from './arena-tensors'
import { isOutOfMemory } from '../errors'
import { wasmDecoder } from './wasm-decoders'
import type { WorkerPool } from './worker-pool'

export async function decodeTensorF32(pool: WorkerPool, entry: TensorEntry): Promise<Float32Array> {
  if (entry.data || entry.unpack || !wasmDecoder(entry.dtype)) return readTensorF32(entry)
  let t
  try {
    t = await loadTensor(pool, entry)
  } catch (e) {
    if (isOutOfMemory(e)) return readTensorF32(entry)
    throw e
  }
  try {
    return t.view().slice()
  } finally {
    t.free()
  }
}
