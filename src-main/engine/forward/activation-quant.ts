// Run-time activation quantization for W8A8 models (SmoothQuant's fake quantizer): dynamic, symmetric
// int8 per token, in f32 with round-half-to-even, values stored back as f32.

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
