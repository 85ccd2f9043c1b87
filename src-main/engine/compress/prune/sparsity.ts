// What a pruned weight looks like, measured the same way for every method: the fraction of zeros, an
// N:M validator (every group of M consecutive inputs in a row holds at most N non-zeros, the pattern
// sparse tensor cores accept), and a down-sampled density thumbnail of the mask for the UI and report.

export interface NmVerdict {
  n: number
  m: number
  /** Groups of M holding more than N non-zeros (0 when the pattern holds). */
  violations: number
  groups: number
  valid: boolean
}

export interface MaskThumbnail {
  rows: number
  cols: number
  /** Fraction of non-zeros per cell, row-major, 0..1. */
  density: number[]
}

export function zeroFraction(W: Float32Array): number {
  if (W.length === 0) return 0
  let zeros = 0
  for (let i = 0; i < W.length; i++) if (W[i] === 0) zeros++
  return zeros / W.length
}

/**
 * Checks the N:M pattern along each row of W [rows, cols]. A row whose length is not a multiple of M
 * ends in a shorter group, which may hold at most N non-zeros too (the strictest reading).
 */
export function checkNm(W: Float32Array, rows: number, cols: number, n: number, m: number): NmVerdict {
  let violations = 0,
    groups = 0
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += m) {
      let nonZero = 0
      const end = Math.min(cols, c0 + m)
      for (let c = c0; c < end; c++) if (W[r * cols + c] !== 0) nonZero++
      if (nonZero > n) violations++
      groups++
    }
  }
  return { n, m, violations, groups, valid: violations === 0 }
}

/** Density of non-zeros of W [rows, cols] (a weight, or a 0/1 mask) pooled to at most maxCells × maxCells cells. */
export function maskThumbnail(W: ArrayLike<number>, rows: number, cols: number, maxCells = 32): MaskThumbnail {
  const tr = Math.min(maxCells, rows),
    tc = Math.min(maxCells, cols)
  const nonZero = new Float64Array(tr * tc),
    count = new Float64Array(tr * tc)
  for (let r = 0; r < rows; r++) {
    const cr = Math.floor((r * tr) / rows)
    for (let c = 0; c < cols; c++) {
      const cell = cr * tc + Math.floor((c * tc) / cols)
      count[cell]++
      if (W[r * cols + c] !== 0) nonZero[cell]++
    }
  }
  return { rows: tr, cols: tc, density: Array.from(nonZero, (v, i) => (count[i] ? v / count[i] : 0)) }
}
