// llama.cpp's Llama converter reorders the rows of q and k so its RoPE can rotate adjacent pairs
// (x[2i], x[2i+1]); HF checkpoints rotate halves (x[i], x[i + d/2]). Within each head of d rows, HF row
// s·(d/2) + i (s = 0 for the first half, 1 for the second) becomes llama.cpp row 2i + s. Only rows move;
// each row's values are copied unchanged. For k, pass the key/value head count.

import { WhittleError } from '../errors'

function checkGeometry(w: Float32Array, rows: number, cols: number, heads: number): number {
  if (![rows, cols, heads].every((n) => Number.isInteger(n) && n > 0)) {
    throw new WhittleError(
      'validation',
      null,
      `RoPE row permutation needs positive integer rows, cols and heads, got ${rows}, ${cols}, ${heads}`,
    )
  }
  if (w.length !== rows * cols) {
    throw new WhittleError('validation', null, `RoPE row permutation: ${w.length} values do not form ${rows} × ${cols}`)
  }
  const headRows = rows / heads
  if (!Number.isInteger(headRows) || headRows % 2 !== 0) {
    throw new WhittleError(
      'validation',
      null,
      `RoPE row permutation: ${rows} rows do not split into ${heads} heads of an even size`,
    )
  }
  return headRows
}

/** For each destination row, the source row it takes (hfToGguf direction). */
function ggufRowSources(rows: number, headRows: number): Int32Array {
  const half = headRows / 2
  const from = new Int32Array(rows)
  for (let head = 0; head < rows; head += headRows) {
    for (let i = 0; i < half; i++) {
      from[head + 2 * i] = head + i
      from[head + 2 * i + 1] = head + half + i
    }
  }
  return from
}

/** HF rotate_half row order -> llama.cpp interleaved row order. */
export function hfToGgufRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const headRows = checkGeometry(w, rows, cols, heads)
  const from = ggufRowSources(rows, headRows)
  const out = new Float32Array(w.length)
  for (let r = 0; r < rows; r++) out.set(w.subarray(from[r] * cols, (from[r] + 1) * cols), r * cols)
  return out
}

/** llama.cpp interleaved row order -> HF rotate_half row order (the inverse of hfToGgufRows). */
export function ggufToHfRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const headRows = checkGeometry(w, rows, cols, heads)
  const from = ggufRowSources(rows, headRows)
  const out = new Float32Array(w.length)
  for (let r = 0; r < rows; r++) out.set(w.subarray(r * cols, (r + 1) * cols), from[r] * cols)
  return out
}
