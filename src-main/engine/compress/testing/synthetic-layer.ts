// A synthetic Linear layer for the OBS methods' tests (GPTQ, SparseGPT): correlated inputs, so the
// Hessian matters, and the output error the methods minimise.

export function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32 - 0.5
  }
}

/** T × K inputs with correlated channels (a random mix of fewer sources), so the Hessian matters. */
export function correlatedInputs(T: number, K: number, seed: number): Float32Array {
  const rnd = lcg(seed)
  const S = Math.max(4, K >> 2)
  const mix = Float32Array.from({ length: S * K }, rnd)
  const X = new Float32Array(T * K)
  const z = new Float32Array(S)
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < S; s++) z[s] = rnd()
    for (let k = 0; k < K; k++) {
      let v = 0.05 * rnd()
      for (let s = 0; s < S; s++) v += z[s] * mix[s * K + k]
      X[t * K + k] = v
    }
  }
  return X
}

export function gram(X: Float32Array, T: number, K: number): Float64Array {
  const H = new Float64Array(K * K)
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < K; i++) {
      const xi = X[t * K + i]
      for (let j = 0; j < K; j++) H[i * K + j] += xi * X[t * K + j]
    }
  }
  return H
}

/** ‖X(W − Q)ᵀ‖_F / ‖XWᵀ‖_F */
export function outputError(
  X: Float32Array,
  T: number,
  W: Float32Array,
  Q: Float32Array,
  rows: number,
  K: number,
): number {
  let num = 0,
    den = 0
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) {
      let y = 0,
        d = 0
      for (let k = 0; k < K; k++) {
        y += X[t * K + k] * W[r * K + k]
        d += X[t * K + k] * (W[r * K + k] - Q[r * K + k])
      }
      num += d * d
      den += y * y
    }
  }
  return Math.sqrt(num / den)
}
