// Frozen block Linears held compactly in JS memory, outside the kernels' 1 GiB memory, and unpacked one
// decoder block at a time into one f32 kernel buffer per Linear role, right before the block runs
// forward or backward. LoRA trains on such a base: its Linears never change, so a compact copy is all
// training needs, and kernel memory then holds one block's Linears instead of all of them.
//   HalfLinears     a base stored as F16/BF16: the same bits, 2 bytes per weight (lossless)
//   Nf4PackedLinears (qlora.ts)  QLoRA's NF4 base: about 0.5 bytes per weight

import type { DType } from '../formats/types'
import { decodeToF32 } from '../formats/read'
import { TensorScope } from '../forward/block-context'
import { encodeHalf } from '../numerics/float-encodings'
import type { ArenaTensor } from '../pool/arena-tensors'
import type { LlamaLinear, PackedLinears } from './llama-weights'

export abstract class BlockwiseLinears extends TensorScope implements PackedLinears {
  private readonly buffers = new Map<LlamaLinear, ArenaTensor>()
  private current = -1
  /** Bytes of the packed weights (JS memory). */
  packedBytes = 0

  /** Keeps a packed copy of W (layer, role). */
  protected abstract store(layer: number, role: LlamaLinear, W: Float32Array, rows: number, cols: number): void
  /** Writes the weight (layer, role) into out; false when this base holds none. */
  protected abstract load(layer: number, role: LlamaLinear, out: Float32Array): boolean

  pack(layer: number, role: LlamaLinear, W: Float32Array, rows: number, cols: number): ArenaTensor {
    this.store(layer, role, W, rows, cols)
    let buffer = this.buffers.get(role)
    if (!buffer) {
      buffer = this.alloc(rows * cols)
      this.buffers.set(role, buffer)
    }
    this.current = -1
    return buffer
  }

  unpack(layer: number): void {
    if (layer === this.current) return
    for (const [role, buffer] of this.buffers) this.load(layer, role, buffer.view())
    this.current = layer
  }

  override free(): void {
    this.buffers.clear()
    this.current = -1
    super.free()
  }
}

/** A base whose Linears are stored as F16 or BF16: the same bits, unpacked losslessly. */
export class HalfLinears extends BlockwiseLinears {
  private readonly halves = new Map<string, Uint16Array>()

  constructor(
    pool: ConstructorParameters<typeof TensorScope>[0],
    readonly dtype: Extract<DType, 'F16' | 'BF16'>,
  ) {
    super(pool)
  }

  protected store(layer: number, role: LlamaLinear, W: Float32Array): void {
    const bits = new Uint16Array(W.length)
    // The weights were F16/BF16 in the file and decode to f32 exactly, so encoding gives back their bits.
    encodeHalf(W, this.dtype, bits)
    this.halves.set(`${layer}:${role}`, bits)
    this.packedBytes += bits.byteLength
  }

  protected load(layer: number, role: LlamaLinear, out: Float32Array): boolean {
    const bits = this.halves.get(`${layer}:${role}`)
    if (!bits) return false
    decodeToF32(this.dtype, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), bits.length, out)
    return true
  }

  override free(): void {
    this.halves.clear()
    super.free()
  }
}
