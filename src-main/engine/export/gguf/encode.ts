// The checksum the GGUF export verifies with (its bf16 encoder is numerics/float-encodings.ts, encodeBf16Ggml).

/** FNV-1a over the f32 bit patterns: verification compares decoded values without keeping them. */
export function f32Checksum(values: Float32Array): number {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  let h = 0x811c9dc5
  for (let i = 0; i < bits.length; i++) {
    h = Math.imul(h ^ bits[i], 0x01000193) >>> 0
  }
  return h
}
