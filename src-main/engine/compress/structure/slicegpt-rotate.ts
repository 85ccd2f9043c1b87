// The matrix algebra of SliceGPT (Ashkboos et al. 2024) on row-major f32 weights, accumulated in f64.
// A basis Q is a D×D orthogonal matrix, row-major, its columns the principal directions by falling
// variance; Q' is its first d columns. The residual r (a row vector) lives in Q's basis: x = r · Q'ᵀ.
//
//   a Linear reading the residual (q/k/v, gate/up, lm_head, the embedding's columns): W [rows, D] → W · Q'
//   a Linear writing it (o_proj, down_proj):                                          W [D, cols] → Q'ᵀ · W
//   the residual carried from basis A to basis B (the shortcut matrix):               Q_A'ᵀ · Q_B' [dA, dB]
//
// RMSNorm's scale is folded into the Linears that read its output first (W · diag(γ)), leaving a norm
// without a learned scale, which commutes with any orthogonal Q (‖x Q‖ = ‖x‖).

/** A D×D orthogonal basis (row-major, columns = directions) and how many leading columns are kept. */
export interface Basis {
  q: Float64Array
  D: number
  kept: number
}

/** The identity basis: the model's original coordinates, nothing sliced. */
export function identityBasis(D: number): Basis {
  const q = new Float64Array(D * D)
  for (let i = 0; i < D; i++) q[i * D + i] = 1
  return { q, D, kept: D }
}

/** W · diag(scale) for W [rows, cols]: RMSNorm's learned scale folded into a Linear that reads the norm. */
export function foldColumns(w: Float32Array, rows: number, cols: number, scale: Float32Array): Float32Array {
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = w[r * cols + c] * scale[c]
  return out
}

/** W · Q' for W [rows, D]: a Linear that reads the residual, in basis B, sliced to B.kept inputs. */
export function rotateInputs(w: Float32Array, rows: number, b: Basis): Float32Array {
  const { q, D, kept: d } = b
  const out = new Float32Array(rows * d)
  const acc = new Float64Array(d)
  for (let r = 0; r < rows; r++) {
    acc.fill(0)
    for (let i = 0; i < D; i++) {
      const wi = w[r * D + i]
      if (wi === 0) continue
      const qi = i * D
      for (let j = 0; j < d; j++) acc[j] += wi * q[qi + j]
    }
    for (let j = 0; j < d; j++) out[r * d + j] = acc[j]
  }
  return out
}

/** Q'ᵀ · W for W [D, cols]: a Linear that writes the residual, in basis B, sliced to B.kept outputs. */
export function rotateOutputs(w: Float32Array, cols: number, b: Basis): Float32Array {
  const { q, D, kept: d } = b
  const acc = new Float64Array(d * cols)
  for (let i = 0; i < D; i++) {
    const wi = i * cols
    for (let j = 0; j < d; j++) {
      const qij = q[i * D + j]
      if (qij === 0) continue
      const aj = j * cols
      for (let c = 0; c < cols; c++) acc[aj + c] += qij * w[wi + c]
    }
  }
  return Float32Array.from(acc)
}

/** Q_A'ᵀ · Q_B' [A.kept, B.kept]: carries a residual in basis A into basis B (r_B = r_A · S). */
export function basisChange(a: Basis, b: Basis): Float32Array {
  const D = a.D
  const out = new Float32Array(a.kept * b.kept)
  for (let i = 0; i < a.kept; i++)
    for (let j = 0; j < b.kept; j++) {
      let s = 0
      for (let k = 0; k < D; k++) s += a.q[k * D + i] * b.q[k * D + j]
      out[i * b.kept + j] = s
    }
  return out
}

/** W' · Q'ᵀ for W' [rows, B.kept]: a sliced reading Linear back in the original coordinates, [rows, D]. */
export function liftInputs(w: Float32Array, rows: number, b: Basis): Float32Array {
  const { q, D, kept: d } = b
  const out = new Float32Array(rows * D)
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < D; i++) {
      let s = 0
      for (let j = 0; j < d; j++) s += w[r * d + j] * q[i * D + j]
      out[r * D + i] = s
    }
  return out
}

/** Q' · W' for W' [B.kept, cols]: a sliced writing Linear back in the original coordinates, [D, cols]. */
export function liftOutputs(w: Float32Array, cols: number, b: Basis): Float32Array {
  const { q, D, kept: d } = b
  const acc = new Float64Array(D * cols)
  for (let i = 0; i < D; i++)
    for (let j = 0; j < d; j++) {
      const qij = q[i * D + j]
      if (qij === 0) continue
      for (let c = 0; c < cols; c++) acc[i * cols + c] += qij * w[j * cols + c]
    }
  return Float32Array.from(acc)
}

/** The residual width kept at slicing fraction `fraction` of D: ⌊(1 − fraction)·D⌋ rounded down to a multiple of `roundTo` (SliceGPT's rule). */
export function slicedWidth(D: number, fraction: number, roundTo: number): number {
  const d = Math.floor((1 - fraction) * D + 1e-9)
  return Math.min(D, d - (d % roundTo))
}
