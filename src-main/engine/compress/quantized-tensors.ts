// Which block Linears hold quantized values, carried across a recipe's steps, so that a step after a
// quantize step sees that its weights are quantized even when a step in between passed them through:
// - a 'quantize' step marks the tensors it changed to fewer than 16 bits per weight, with its method (a
//   tensor a GGUF step kept in F16/F32 is not marked);
// - a prune ('prune', 'transform') or structural step keeps the marks: its surviving values are still on
//   the quantizer's grid (zeros included); tensors a structural step renamed or removed follow it;
// - a recovery step ('recover') that rewrote a tensor takes it off the grid (trained or merged weights are
//   dense), and removes the mark.
// Recovery steps read the marks (ctx.quantized): full-parameter training of a quantized student is refused.

import type { CompressionMethod } from './methods/method'

/** Tensor name → the method of the quantize step that left it quantized. */
export type QuantizedTensors = ReadonlyMap<string, string>

export function nextQuantized(
  before: QuantizedTensors,
  method: Pick<CompressionMethod, 'name' | 'kind'>,
  changed: readonly { name: string; bitsPerWeight: number }[],
  renames: ReadonlyMap<string, string> | undefined,
): Map<string, string> {
  const after = new Map<string, string>()
  for (const [name, by] of before) {
    const renamed = renames ? renames.get(name) : name
    if (renamed !== undefined) after.set(renamed, by)
  }
  if (method.kind === 'quantize') for (const t of changed) if (t.bitsPerWeight < 16) after.set(t.name, method.name)
  if (method.kind === 'recover') for (const t of changed) after.delete(t.name)
  return after
}
