// The one-line name of a packed Linear's storage, shared by the model summary and the tensor's storage panel.

import type { PackedLinearLayout } from './types'

const SCHEME_NAMES: Record<PackedLinearLayout['scheme'], string> = {
  gptq: 'GPTQ',
  'compressed-tensors': 'compressed-tensors',
}

/** e.g. "GPTQ 4-bit g128 act-order, sym" or "compressed-tensors 8-bit per-channel, asym". */
export function packedLinearLabel(
  layout: Pick<PackedLinearLayout, 'scheme' | 'bits' | 'groupSize' | 'actOrder' | 'symmetric'>,
): string {
  const grouping = layout.groupSize > 0 ? `g${layout.groupSize}` : 'per-channel'
  const order = layout.actOrder ? ' act-order' : ''
  return `${SCHEME_NAMES[layout.scheme]} ${layout.bits}-bit ${grouping}${order}, ${layout.symmetric ? 'sym' : 'asym'}`
}

/** The distinct labels of a model's packed Linears, in file order, joined; undefined when none are packed. */
export function modelPackingLabel(tensors: readonly { packed?: PackedLinearLayout }[]): string | undefined {
  const labels = new Set<string>()
  for (const t of tensors) if (t.packed) labels.add(packedLinearLabel(t.packed))
  return labels.size > 0 ? [...labels].join('; ') : undefined
}
