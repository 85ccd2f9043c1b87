// How a Linear's input columns are grouped for quantization parameters.
// groupSize ≤ 0 or ≥ cols means one group per output row ("per channel"); otherwise runs of
// groupSize consecutive columns, the last one possibly shorter (down_proj's 172 = 5·32 + 12).

export function groupCount(cols: number, groupSize: number): number {
  return groupSize > 0 && groupSize < cols ? Math.ceil(cols / groupSize) : 1
}

export function effectiveGroup(cols: number, groupSize: number): number {
  return groupSize > 0 && groupSize < cols ? groupSize : cols
}

/**
 * Storage bits per weight of a uniformly quantized Linear: the codes, plus an fp16 scale and a
 * `bits`-wide zero point per group (the GPTQ checkpoint layout).
 */
export function uniformBitsPerWeight(bits: number, cols: number, groupSize: number, sym: boolean): number {
  const g = effectiveGroup(cols, groupSize)
  return bits + (16 + (sym ? 0 : bits)) / g
}
