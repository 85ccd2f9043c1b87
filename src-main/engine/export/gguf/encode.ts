// Small encoders the GGUF export needs beside the quantization kernels.

/**
 * f32 -> bf16 with round-to-nearest-even, NaNs kept quiet (ggml's and PyTorch's rule). Returns the bytes
 * and the f32 values they decode to.
 */
export function encodeBf16(w: Float32Array): { bytes: Uint8Array; decoded: Float32Array } {
  const bits = new Uint32Array(w.buffer, w.byteOffset, w.length)
  const halves = new Uint16Array(w.length)
  const decoded = new Float32Array(w.length)
  const decodedBits = new Uint32Array(decoded.buffer)
  for (let i = 0; i < w.length; i++) {
    const u = bits[i]
    const isNan = (u & 0x7fffffff) > 0x7f800000
    const h = isNan ? ((u >>> 16) | 64) & 0xffff : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff
    halves[i] = h
    decodedBits[i] = h << 16
  }
  return { bytes: new Uint8Array(halves.buffer), decoded }
}

/** FNV-1a over the f32 bit patterns: verification compares decoded values without keeping them. */
export function f32Checksum(values: Float32Array): number {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  let h = 0x811c9dc5
  for (let i = 0; i < bits.length; i++) {
    h = Math.imul(h ^ bits[i], 0x01000193) >>> 0
  }
  return h
}
