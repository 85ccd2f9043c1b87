// Hidden states of a sliced model (SliceGPT) between blocks: rows of the full hidden size whose first
// `width` values are the residual and the rest zeros. Keeping the full row width means every caller of
// CausalLM (perplexity, capture, probes) allocates hidden states as for any model; a block reads its
// narrower input packed into kernel memory and writes its output back zero-padded.

/** A block's residual width where it reads its input and where it writes its output. */
export interface StreamWidths {
  input: number
  output: number
}

/** Copies `rows` rows from hidden [·, H] (starting at row `row0`) into packed [rows, width]. */
export function packRows(
  hidden: Float32Array,
  row0: number,
  rows: number,
  H: number,
  packed: Float32Array,
  width: number,
): void {
  for (let r = 0; r < rows; r++) {
    const src = (row0 + r) * H
    packed.set(hidden.subarray(src, src + width), r * width)
  }
}

/** Writes packed [rows, width] back into hidden [·, H] from row `row0`, zeroing each row beyond `width`. */
export function unpackRows(
  packed: Float32Array,
  width: number,
  hidden: Float32Array,
  row0: number,
  rows: number,
  H: number,
): void {
  for (let r = 0; r < rows; r++) {
    const dst = (row0 + r) * H
    hidden.set(packed.subarray(r * width, (r + 1) * width), dst)
    hidden.fill(0, dst + width, dst + H)
  }
}
