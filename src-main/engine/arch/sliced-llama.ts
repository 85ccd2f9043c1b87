// A SliceGPT-sliced Llama (compress/methods/slicegpt.ts) as Whittle writes it: the residual stream has its
// own width at each point of the network, declared once in config.json under `whittle_slicegpt`, and each
// block holds two shortcut matrices that carry the residual from one rotated basis into the next.
//
//   "whittle_slicegpt": { "sliced_dims": [d0, d1, …, d2L], "slicing": 0.25 }
//
// sliced_dims[2l] is the width entering layer l's attention, sliced_dims[2l + 1] the width entering its
// MLP, sliced_dims[2L] the width after the last layer (final norm and lm_head). hidden_size stays the
// original width: the norms divide by it (SliceGPT's RMSN), so nothing else in the config changes.
// `model.layers.N.attn_shortcut_Q` is [d(2l), d(2l+1)] and `mlp_shortcut_Q` is [d(2l+1), d(2l+2)]; the
// residual r (a row vector) becomes r · Q, as in SliceGPT's own checkpoints.

import type { TensorRole } from '../../contract/api'
import { WhittleError, showValue } from '../errors'
import type { ModelFiles, TensorEntry } from '../formats/types'
import type { DeclaredSource } from './declared-values'
import type { SlicedWidths, TensorPlace } from './types'

export type { SlicedWidths }

export const SLICEGPT_CONFIG_KEY = 'whittle_slicegpt'

export type ShortcutKind = 'attn' | 'mlp'

/** The shortcut matrix's name beside a layer's q_proj (same prefix, `model.` or not). */
export function shortcutName(qProjName: string, kind: ShortcutKind): string {
  return qProjName.replace(/self_attn\.q_proj\.weight$/, `${kind}_shortcut_Q`)
}

/** The `whittle_slicegpt` value to write into config.json for these widths. */
export function slicingConfigValue(s: SlicedWidths): Record<string, unknown> {
  return { sliced_dims: [...s.dims], slicing: s.fraction }
}

/** The declared slicing, checked against the hidden size and layer count, or null when the key is absent. */
export function readSlicing(source: DeclaredSource, hidden: number, layers: number): SlicedWidths | null {
  const raw = source.raw(SLICEGPT_CONFIG_KEY)
  if (raw === undefined) return null
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw source.fail(`${SLICEGPT_CONFIG_KEY} must be an object, found ${showValue(raw)}`)
  const o = raw as Record<string, unknown>
  const dims = Object.hasOwn(o, 'sliced_dims') ? o.sliced_dims : undefined
  if (!Array.isArray(dims) || dims.length !== 2 * layers + 1)
    throw source.fail(
      `${SLICEGPT_CONFIG_KEY}.sliced_dims must list ${2 * layers + 1} widths (2 per layer and the final one), found ${showValue(dims)}`,
    )
  for (const d of dims)
    if (typeof d !== 'number' || !Number.isInteger(d) || d <= 0 || d > hidden)
      throw source.fail(
        `${SLICEGPT_CONFIG_KEY}.sliced_dims must hold integers in 1..hidden_size ${hidden}, found ${showValue(d)}`,
      )
  const fraction = Object.hasOwn(o, 'slicing') ? o.slicing : 0
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1))
    throw source.fail(`${SLICEGPT_CONFIG_KEY}.slicing must be a number in [0, 1), found ${showValue(fraction)}`)
  return { dims: dims as number[], fraction }
}

/** Which axis of a tensor of `role` runs along the residual stream, and which of the 2L + 1 points it is. */
function slicedAxis(place: TensorPlace, layers: number): { axis: number; point: number } | null {
  const l = place.layer
  const role: TensorRole = place.role
  if (place.bias) return null
  if (l === null) {
    if (role === 'embed') return { axis: 1, point: 0 }
    if (role === 'lm_head') return { axis: 1, point: 2 * layers }
    if (role === 'final_norm') return { axis: 0, point: 2 * layers }
    return null
  }
  switch (role) {
    case 'q':
    case 'k':
    case 'v':
      return { axis: 1, point: 2 * l }
    case 'attn_norm':
      return { axis: 0, point: 2 * l }
    case 'o':
      return { axis: 0, point: 2 * l + 1 }
    case 'gate':
    case 'up':
      return { axis: 1, point: 2 * l + 1 }
    case 'ffn_norm':
      return { axis: 0, point: 2 * l + 1 }
    case 'down':
      return { axis: 0, point: 2 * l + 2 }
    default:
      return null
  }
}

function shortcutPoints(name: string): { layer: number; first: number } | null {
  const m = /(?:^|\.)layers\.(\d+)\.(attn|mlp)_shortcut_Q$/.exec(name)
  if (!m) return null
  const layer = Number(m[1])
  return { layer, first: 2 * layer + (m[2] === 'attn' ? 0 : 1) }
}

/**
 * The model's tensors with every sliced axis checked against the declared widths and put back to the
 * hidden size, so the family's ordinary geometry check applies to the rest (heads, intermediate, vocab).
 * A shape that disagrees with sliced_dims is config.json's fault.
 */
export function unslicedFiles(
  model: ModelFiles,
  slicing: SlicedWidths,
  hidden: number,
  place: (name: string) => TensorPlace,
  file: string,
): ModelFiles {
  const layers = (slicing.dims.length - 1) / 2
  const tensors = model.tensors.map((t): TensorEntry => {
    const shortcut = shortcutPoints(t.name)
    if (shortcut) {
      const want = [slicing.dims[shortcut.first], slicing.dims[shortcut.first + 1]]
      if (shortcut.layer >= layers || t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1])
        throw new WhittleError(
          'config',
          file,
          `${t.name} has shape [${t.shape.join(', ')}], but ${SLICEGPT_CONFIG_KEY}.sliced_dims asks for [${want.join(', ')}]`,
        )
      return t
    }
    const at = slicedAxis(place(t.name), layers)
    if (!at || at.axis >= t.shape.length || at.point > 2 * layers) return t
    const want = slicing.dims[at.point]
    if (t.shape[at.axis] !== want)
      throw new WhittleError(
        'config',
        file,
        `${t.name} has shape [${t.shape.join(', ')}], but ${SLICEGPT_CONFIG_KEY}.sliced_dims[${at.point}] is ${want}`,
      )
    const shape = [...t.shape]
    shape[at.axis] = hidden
    return { ...t, shape }
  })
  return { ...model, tensors }
}
