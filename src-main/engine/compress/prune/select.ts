// Which weights a pruner zeroes, given a score per weight (lower = less important). The selection rules
// are the reference implementations' (see ../shared/reference/README.md):
// - per matrix: the threshold is the score at index ⌊p·numel⌋ of the sorted scores, and every score at or
//   below it is pruned (so ties at the threshold prune one weight more than p·numel);
// - per row: the ⌊p·cols⌋ lowest scores of each row, after a stable sort (ties keep column order);
// - N:M: in every run of M consecutive inputs of a row, the M − N lowest scores (stable as well).

import { WhittleError } from '../../errors'

export interface NmPattern {
  n: number
  m: number
}

/** "2:4" → { n: 2, m: 4 }: N kept out of every M, 0 < N < M ≤ 64. `where` names the step and field. */
export function parsePattern(text: unknown, where: string): NmPattern {
  const match = typeof text === 'string' ? /^(\d+):(\d+)$/.exec(text.trim()) : null
  const n = match ? Number(match[1]) : NaN,
    m = match ? Number(match[2]) : NaN
  if (!match || !(n > 0 && n < m && m <= 64)) {
    throw new WhittleError(
      'validation',
      null,
      `${where} must be "N:M" with 0 < N < M ≤ 64, e.g. "2:4" (got ${JSON.stringify(text)})`,
    )
  }
  return { n, m }
}

/** Zeroes W where score ≤ the score at index ⌊p·numel⌋ of all scores sorted. Returns the threshold. */
export function pruneMatrix(W: Float32Array, score: Float32Array, sparsity: number): number {
  if (sparsity <= 0) return -Infinity
  const sorted = score.slice().sort()
  const threshold = sorted[Math.min(sorted.length - 1, Math.floor(score.length * sparsity))]
  for (let i = 0; i < W.length; i++) if (score[i] <= threshold) W[i] = 0
  return threshold
}

/** Zeroes the ⌊p·cols⌋ lowest-scored weights of every row (stable: among equal scores, lower columns first). */
export function pruneRows(W: Float32Array, score: Float32Array, rows: number, cols: number, sparsity: number): void {
  const k = Math.floor(cols * sparsity)
  if (k <= 0) return
  const order = new Int32Array(cols)
  for (let r = 0; r < rows; r++) {
    const at = r * cols
    for (let c = 0; c < cols; c++) order[c] = c
    order.sort((a, b) => score[at + a] - score[at + b] || a - b)
    for (let i = 0; i < k; i++) W[at + order[i]] = 0
  }
}

/** Zeroes the M − N lowest-scored weights of every run of M inputs in each row (a ragged tail keeps N). */
export function pruneNm(W: Float32Array, score: Float32Array, rows: number, cols: number, { n, m }: NmPattern): void {
  const idx: number[] = []
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += m) {
      const end = Math.min(cols, c0 + m)
      idx.length = 0
      for (let c = c0; c < end; c++) idx.push(r * cols + c)
      idx.sort((a, b) => score[a] - score[b] || a - b)
      for (let i = 0; i < idx.length - n; i++) W[idx[i]] = 0
    }
  }
}

/**
 * Storage bits per weight of a pruned fp16 matrix in a sparse format: kept values at 16 bits plus a 1-bit
 * mask (unstructured), or plus ⌈log2 M⌉ index bits per kept value (N:M, as sparse tensor cores store 2:4).
 */
export function sparseBitsPerWeight(sparsity: number, pattern: NmPattern | null, valueBits = 16): number {
  if (pattern) return (pattern.n / pattern.m) * (valueBits + Math.ceil(Math.log2(pattern.m)))
  return (1 - sparsity) * valueBits + 1
}

export function pruneFormat(sparsity: number, pattern: NmPattern | null): string {
  return pattern ? `${pattern.n}:${pattern.m}` : `${+(sparsity * 100).toFixed(2)}% unstructured`
}
