// compressed-tensors' unpacked 8-bit layouts (the int-quantized and float-quantized formats, one byte per
// weight): `weight` [rows, cols] holds I8 codes or F8_E4M3 values, `weight_scale` [rows, 1] one scale per
// output channel, and the optional `weight_zero_point` [rows, 1] (I8) an asymmetric grid's zero. A
// loader computes (weight − zero_point) · weight_scale in the scale's dtype; here in f32, one rounding.
// The exporter (export/compressed-tensors-w8a8.ts) and the reader (formats/packed-linears.ts) share it.

import { f8e4m3ToF32 } from './float-encodings'

/**
 * Run-time activation quantization a W8A8 model declares (compressed-tensors' input_activations with
 * strategy token, dynamic) and the forward pass simulates: int8 or E4M3, symmetric, one scale per token.
 * 'int8-per-token-inputs' is int8 at Linear inputs only (BitNet b1.58's W1.58A8); 'int8-per-token' also
 * quantizes the q/k/v outputs (SmoothQuant).
 */
export type ActivationScheme = 'int8-per-token' | 'int8-per-token-inputs' | 'fp8-per-token'

/** The two compressed-tensors formats with one byte per weight. */
export type W8a8Format = 'int-quantized' | 'float-quantized'

/** The safetensors dtype of `weight` in each format. */
export const W8A8_WEIGHT_DTYPE = { 'int-quantized': 'I8', 'float-quantized': 'F8_E4M3' } as const

/** Decodes stored bytes (I8 codes or E4M3 values), optional zero points and per-row scales to f32 [rows, cols]. */
export function dequantizeW8a8(
  format: W8a8Format,
  codes: Uint8Array,
  zeroPoint: Int8Array | null,
  scale: Float32Array,
  rows: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(rows * cols)
  const ints = new Int8Array(codes.buffer, codes.byteOffset, codes.length)
  for (let row = 0; row < rows; row++) {
    const z = zeroPoint ? zeroPoint[row] : 0
    for (let c = 0; c < cols; c++) {
      const at = row * cols + c
      const v = format === 'float-quantized' ? f8e4m3ToF32(codes[at]) : ints[at] - z
      out[at] = Math.fround(v * scale[row])
    }
  }
  return out
}
