// What each decoder block keeps after structural compression (SliceGPT's hidden width, head removal,
// Bonsai's and CoFi's MLP neurons), read off the result's tensor shapes rather than trusted from a
// method's own account, so that every structural method is reported the same way.

import type { BlockShape, TensorInfo } from '../../contract/api'
import type { LoadedModel } from '../model/loaded-model'

interface BlockWidths {
  hidden: number
  heads: number
  kvHeads: number
  intermediate: number
}

/** [out, in] of a Linear weight as PyTorch holds it (GPT-2's Conv1D is stored the other way round). */
function outIn(t: TensorInfo, model: LoadedModel): [number, number] {
  const [a, b] = t.shape
  return model.arch.places[t.name]?.transposed ? [b, a] : [a, b]
}

/** Per decoder layer, its widths from the weights that hold them; layers with no attention or MLP weights read 0. */
export function blockWidths(model: LoadedModel): BlockWidths[] {
  const headDim = model.arch.headDim
  const blocks: BlockWidths[] = Array.from({ length: model.arch.layers }, () => ({
    hidden: 0,
    heads: 0,
    kvHeads: 0,
    intermediate: 0,
  }))
  for (const t of model.tensors) {
    const place = model.arch.places[t.name]
    if (t.layer === null || t.layer >= blocks.length || t.shape.length !== 2 || place?.bias) continue
    const b = blocks[t.layer]
    const [out, inWidth] = outIn(t, model)
    switch (t.role) {
      case 'q':
        b.hidden = inWidth
        b.heads = out / headDim
        if (b.kvHeads === 0) b.kvHeads = b.heads
        break
      case 'k':
        b.kvHeads = out / headDim
        break
      case 'qkv':
        // Fused q, k, v with as many kv heads as heads (GPT-2, GPT-NeoX).
        b.hidden = inWidth
        b.heads = b.kvHeads = out / (3 * headDim)
        break
      case 'gate':
      case 'up':
      case 'fc1':
        b.intermediate = out
        break
    }
  }
  return blocks
}

/**
 * Each block of `result` beside the source's widths, when any width differs (null when the blocks are
 * the source's, as after quantization or unstructured pruning). Layers are the result's; a dropped
 * layer shows in the layer count, not here.
 */
export function blockShapes(source: LoadedModel, result: LoadedModel): BlockShape[] | null {
  const original = blockWidths(source)
  const reference = original[0]
  if (!reference) return null
  const kept = blockWidths(result)
  let differs = false
  const shapes = kept.map((k, layer): BlockShape => {
    // A dropped layer renumbers the rest; compare against the source's first block, all blocks of a
    // source model being alike (a source with per-layer widths compares layer by layer).
    const o = original[layer] && result.arch.layers === source.arch.layers ? original[layer] : reference
    if (k.hidden !== o.hidden || k.heads !== o.heads || k.kvHeads !== o.kvHeads || k.intermediate !== o.intermediate)
      differs = true
    return {
      layer,
      hidden: [o.hidden, k.hidden],
      heads: [o.heads, k.heads],
      kvHeads: [o.kvHeads, k.kvHeads],
      intermediate: [o.intermediate, k.intermediate],
    }
  })
  return differs ? shapes : null
}
