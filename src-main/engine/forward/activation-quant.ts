// Run-time activation quantization for W8A8 models, simulated in f32 (values stored back as f32):
// - int8 per token (SmoothQuant's fake quantizer): dynamic, symmetric, scale max|row| / 127, round-half-even;
// - fp8 per token (llm-compressor's FP8_DYNAMIC input activations): dynamic, symmetric, scale max|row| / 448,
//   each value divided by its row's scale, clamped to ±448 and rounded to the nearest E4M3FN value.

import type { ActivationScheme } from '../model/loaded-model'
import { F8_E4M3_MAX, roundToF8E4M3 } from '../numerics/float-encodings'
import { roundHalfEven } from '../numerics/rounding'

const f = Math.fround
/** Scales never drop below this (an all-zero row keeps finite values). */
export const INT8_CLAMP = 1e-5

/** x [M, K] in place: each row scaled by max|row| / 127, rounded, and scaled back. */
export function fakeQuantPerToken(x: Float32Array, M: number, K: number): void {
  for (let t = 0; t < M; t++) {
    let m = 0
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(x[t * K + k]))
    const scale = f(Math.max(f(m), INT8_CLAMP) / 127)
    for (let k = 0; k < K; k++) x[t * K + k] = f(roundHalfEven(f(x[t * K + k] / scale)) * scale)
  }
}

/** x [M, K] in place: each row scaled by max|row| / 448, rounded to E4M3FN, and scaled back. */
export function fakeQuantPerTokenFp8(x: Float32Array, M: number, K: number): void {
  for (let t = 0; t < M; t++) {
    let m = 0
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(x[t * K + k]))
    const scale = f(Math.max(f(m), INT8_CLAMP) / F8_E4M3_MAX)
    for (let k = 0; k < K; k++) {
      const q = Math.min(F8_E4M3_MAX, Math.max(-F8_E4M3_MAX, f(x[t * K + k] / scale)))
      x[t * K + k] = f(roundToF8E4M3(q) * scale)
    }
  }
}

/** Applies `scheme` to x [M, K] in place. */
export function fakeQuantActivations(scheme: ActivationScheme, x: Float32Array, M: number, K: number): void {
  if (scheme === 'int8-per-token' || scheme === 'int8-per-token-inputs') fakeQuantPerToken(x, M, K)
  else fakeQuantPerTokenFp8(x, M, K)
}
