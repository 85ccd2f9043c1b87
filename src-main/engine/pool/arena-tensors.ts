// f32 tensors in the kernels' shared memory: the weights and activations of the forward pass and of the
// training engine, and whole tensors decoded by decode-tensor.ts.
// Loading a tensor reads its raw bytes straight into that memory and decodes them there
// (WASM kernels where one exists, the TS reference otherwise), so no second copy is made in JS.

import type { TensorEntry } from '../formats/types'
import { decodeToF32, readTensorBytes } from '../formats/read'
import type { Region } from './memory-arena'
import type { WorkerPool } from './worker-pool'
import { elementCount } from '../formats/dtype-info'
import { wasmDecoder } from './wasm-decoders'

/** f32 arrays resident in the kernel memory. `ptr` is what kernels take; `view()` what JS reads. */
export class ArenaTensor {
  constructor(
    private readonly pool: WorkerPool,
    readonly region: Region,
    readonly length: number,
  ) {}

  get ptr(): number {
    return this.region.ptr
  }

  /** Byte address of element i. */
  at(i: number): number {
    return this.region.ptr + i * 4
  }

  view(): Float32Array {
    return this.pool.arena.f32(this.region, 0, this.length)
  }

  free(): void {
    this.pool.arena.release(this.region)
  }
}

export function allocTensor(pool: WorkerPool, length: number): ArenaTensor {
  return new ArenaTensor(pool, pool.arena.alloc(Math.max(1, length) * 4), length)
}

/** Reads a whole tensor (or `rows` rows starting at `rowStart`) into kernel memory as f32. */
export async function loadTensor(
  pool: WorkerPool,
  entry: TensorEntry,
  rowStart = 0,
  rows?: number,
): Promise<ArenaTensor> {
  const numel = elementCount(entry.shape)
  const rowLen = entry.shape.length >= 2 ? numel / entry.shape[0] : numel
  const nRows = rows ?? (entry.shape.length >= 2 ? entry.shape[0] : 1)
  const elements = nRows * rowLen
  const bytesPerRow = (entry.byteLength / numel) * rowLen
  const out = allocTensor(pool, elements)
  const byteLength = bytesPerRow * nRows
  const byteStart = bytesPerRow * rowStart
  if (entry.dtype === 'F32') {
    await readTensorBytes(entry, byteStart, byteLength, pool.arena.u8(out.region, 0, byteLength))
    return out
  }
  const staging = pool.arena.alloc(Math.max(1, byteLength))
  try {
    const raw = pool.arena.u8(staging, 0, byteLength)
    await readTensorBytes(entry, byteStart, byteLength, raw)
    const wasm = wasmDecoder(entry.dtype)
    if (wasm) {
      ;(pool.kernels[wasm.kernel] as (src: number, dst: number, n: number) => void)(
        staging.ptr,
        out.ptr,
        elements / wasm.perUnit,
      )
    } else {
      decodeToF32(entry.dtype, raw, elements, out.view())
    }
    return out
  } finally {
    pool.arena.release(staging)
  }
}
