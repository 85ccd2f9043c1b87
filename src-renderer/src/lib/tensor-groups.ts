// The tensor tree's model: tensors grouped by decoder layer, filtered by a free-text query.

import type { TensorInfo } from '@contract/api'

export interface TensorGroup {
  /** Stable key: 'head' for tensors outside the blocks, else 'layer-N'. */
  key: string
  label: string
  layer: number | null
  tensors: TensorInfo[]
}

export const OUTSIDE_BLOCKS_LABEL = 'Embeddings & head'

/**
 * Groups in display order: the tensors outside the blocks first, then Layer 0, 1, ... Tensors keep
 * their file order inside a group.
 */
export function groupTensors(tensors: readonly TensorInfo[]): TensorGroup[] {
  const byLayer = new Map<number | null, TensorInfo[]>()
  for (const t of tensors) {
    const list = byLayer.get(t.layer)
    if (list) list.push(t)
    else byLayer.set(t.layer, [t])
  }
  const layers = [...byLayer.keys()].filter((l): l is number => l !== null).sort((a, b) => a - b)
  const groups: TensorGroup[] = []
  const outside = byLayer.get(null)
  if (outside) groups.push({ key: 'head', label: OUTSIDE_BLOCKS_LABEL, layer: null, tensors: outside })
  for (const layer of layers)
    groups.push({ key: `layer-${layer}`, label: `Layer ${layer}`, layer, tensors: byLayer.get(layer)! })
  return groups
}

/** Case-insensitive match on name, role or dtype; every whitespace-separated word must match one. */
export function tensorMatches(t: TensorInfo, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean)
  if (words.length === 0) return true
  const haystack = [t.name.toLowerCase(), t.role.toLowerCase(), t.dtype.toLowerCase()]
  return words.every((w) => haystack.some((h) => h.includes(w)))
}

/** Groups with only the matching tensors; groups left empty are dropped. */
export function filterGroups(groups: readonly TensorGroup[], query: string): TensorGroup[] {
  if (!query.trim()) return [...groups]
  return groups
    .map((g) => ({ ...g, tensors: g.tensors.filter((t) => tensorMatches(t, query)) }))
    .filter((g) => g.tensors.length > 0)
}

/**
 * The name without its block prefix, which the group header already shows:
 * "model.layers.3.mlp.down_proj.weight" -> "mlp.down_proj.weight", "blk.3.attn_q.weight" -> "attn_q.weight".
 */
export function shortTensorName(t: Pick<TensorInfo, 'name' | 'layer'>): string {
  if (t.layer === null) return t.name
  const parts = t.name.split('.')
  const at = parts.indexOf(String(t.layer))
  if (at < 0 || at === parts.length - 1) return t.name
  return parts.slice(at + 1).join('.')
}
