// Rounding of plain numbers to integers, as the references round: torch.round (and numpy.round) round
// half to even. Used by the quantizers, the activation quantization of the forward pass, and the
// mini-float encoders.

/** x rounded to the nearest integer, halves to the even neighbour (torch.round). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}
