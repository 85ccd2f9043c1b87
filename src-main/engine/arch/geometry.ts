// Geometry shared by all families: fill what config.json (or GGUF metadata) leaves out from tensor shapes,
// then check every tensor with a known role against the result. A disagreement with a declared number is
// an error naming the declaring file; a disagreement among shapes alone (no declaration) is a warning.

import type { TensorRole } from '../../contract/api'
import type { TensorEntry } from '../formats/types'
import type { DeclaredSource, DeclaredValue } from './declared-values'
import type { TensorPlace } from './types'

export interface DeclaredGeometry {
  layers?: DeclaredValue
  hiddenSize?: DeclaredValue
  heads?: DeclaredValue
  kvHeads?: DeclaredValue
  headDim?: DeclaredValue
  intermediateSize?: DeclaredValue
  /** Per-layer MLP widths (one per decoder layer), where layers differ. */
  intermediateSizes?: { values: number[]; key: string }
  vocabSize?: DeclaredValue
  /** Width of the token embedding when it differs from hidden (OPT-350m's word_embed_proj_dim). */
  embedWidth?: DeclaredValue
}

export interface ResolvedGeometry {
  layers: number
  hiddenSize: number
  heads: number
  kvHeads: number
  headDim: number
  intermediateSize: number
  intermediateSizes?: number[]
  vocabSize: number
  embedWidth: number
}

/** A dimension the tensors are expected to have, and whether a declared number stands behind it. */
interface Dim {
  value: number
  declared: boolean
  why: string
}

/** Head dims tried, most common first, when nothing declares the head count. */
const HEAD_DIM_GUESSES = [128, 64, 96, 80, 256, 160, 32, 16, 8, 4, 2, 1]
/** Enough mismatch warnings to diagnose a model without drowning the summary. */
const MAX_SHAPE_WARNINGS = 6

interface Placed {
  entry: TensorEntry
  place: TensorPlace
}

/** [out, in] of a 2-D weight in PyTorch Linear terms (undoing GPT-2's Conv1D [in, out] storage). */
function outIn(p: Placed): [number, number] | null {
  const s = p.entry.shape
  if (s.length !== 2) return null
  return p.place.transposed ? [s[1], s[0]] : [s[0], s[1]]
}

function firstWeight(placed: Placed[], role: TensorRole): [number, number] | null {
  for (const p of placed) {
    if (p.place.role !== role || p.place.bias) continue
    const d = outIn(p)
    if (d) return d
  }
  return null
}

function firstVector(placed: Placed[], roles: TensorRole[]): number | null {
  for (const p of placed) {
    if (roles.includes(p.place.role) && !p.place.bias && p.entry.shape.length === 1) return p.entry.shape[0]
  }
  return null
}

function describe(v: DeclaredValue | undefined, fallback: number, what: string): Dim {
  return v
    ? { value: v.value, declared: true, why: `${v.key} ${v.value}` }
    : { value: fallback, declared: false, why: `${what} ${fallback} (from shapes)` }
}

export function resolveGeometry(
  tensors: TensorEntry[],
  places: Record<string, TensorPlace>,
  declared: DeclaredGeometry,
  source: DeclaredSource | null,
  layerRoles: readonly TensorRole[],
  warnings: string[],
): ResolvedGeometry {
  const placed: Placed[] = tensors.map((entry) => ({ entry, place: places[entry.name] }))
  const embed = firstWeight(placed, 'embed')
  const lmHead = firstWeight(placed, 'lm_head')
  const q = firstWeight(placed, 'q')
  const k = firstWeight(placed, 'k') ?? firstWeight(placed, 'v')
  const qkv = firstWeight(placed, 'qkv')

  const hidden = describe(
    declared.hiddenSize,
    q?.[1] ??
      qkv?.[1] ??
      firstWeight(placed, 'gate')?.[1] ??
      firstWeight(placed, 'fc1')?.[1] ??
      embed?.[1] ??
      firstVector(placed, ['attn_norm', 'ffn_norm', 'final_norm']) ??
      0,
    'hidden size',
  )
  const embedWidth = declared.embedWidth ? describe(declared.embedWidth, 0, '') : hidden
  const vocab = describe(declared.vocabSize, embed?.[0] ?? lmHead?.[0] ?? 0, 'vocab')
  const perLayer = declared.intermediateSizes
  const widest = perLayer ? perLayer.values.reduce((m, v) => Math.max(m, v), 0) : 0
  if (perLayer && declared.intermediateSize && declared.intermediateSize.value !== widest)
    throw source!.fail(
      `${declared.intermediateSize.key} ${declared.intermediateSize.value} is not the largest of ${perLayer.key} (${widest})`,
    )
  const inter = describe(
    perLayer ? { value: widest, key: perLayer.key } : declared.intermediateSize,
    firstWeight(placed, 'gate')?.[0] ??
      firstWeight(placed, 'up')?.[0] ??
      firstWeight(placed, 'fc1')?.[0] ??
      firstWeight(placed, 'down')?.[1] ??
      firstWeight(placed, 'fc2')?.[1] ??
      0,
    'intermediate size',
  )

  // Heads: validate the declared relations first, since a bad config would otherwise surface as a
  // confusing shape mismatch.
  const h = declared.heads
  const kvDecl = declared.kvHeads
  const hdDecl = declared.headDim
  if (h && !hdDecl && hidden.value % h.value !== 0) {
    const of = declared.hiddenSize
      ? `${declared.hiddenSize.key} ${hidden.value}`
      : `the hidden size ${hidden.value} of the tensors`
    throw source!.fail(`${h.key} ${h.value} does not divide ${of}`)
  }
  if (h && kvDecl && h.value % kvDecl.value !== 0) {
    throw source!.fail(`${kvDecl.key} ${kvDecl.value} does not divide ${h.key} ${h.value}`)
  }
  const qOutSeen = q?.[0] ?? (qkv && !kvDecl ? qkv[0] / 3 : null) ?? hidden.value
  let headDim: number
  let heads: number
  if (h) {
    heads = h.value
    headDim = hdDecl ? hdDecl.value : hidden.value / heads
  } else {
    headDim =
      hdDecl?.value ??
      HEAD_DIM_GUESSES.find((d) => qOutSeen % d === 0 && hidden.value % d === 0 && (k === null || k[0] % d === 0)) ??
      1
    heads = headDim > 0 ? Math.floor(qOutSeen / headDim) : 0
    if (hidden.value > 0) warnings.push(`head count not declared; assumed head dim ${headDim}, so ${heads} heads`)
  }
  let kvHeads: number
  if (kvDecl) kvHeads = kvDecl.value
  else if (k && headDim > 0 && k[0] % headDim === 0) kvHeads = k[0] / headDim
  else if (qkv && headDim > 0 && q === null && (qkv[0] / headDim - heads) % 2 === 0)
    kvHeads = (qkv[0] / headDim - heads) / 2
  else kvHeads = heads
  if (kvHeads <= 0 || (heads > 0 && heads % kvHeads !== 0)) {
    warnings.push(`key/value head count ${kvHeads} does not divide the head count ${heads}; using ${heads}`)
    kvHeads = heads
  }
  const headsDeclared = !!h || !!hdDecl
  const qOut: Dim = { value: heads * headDim, declared: headsDeclared, why: `${heads} heads × head dim ${headDim}` }
  const kvOut: Dim = {
    value: kvHeads * headDim,
    declared: headsDeclared || !!kvDecl,
    why: `${kvHeads} key/value heads × head dim ${headDim}`,
  }
  const qkvOut: Dim = {
    value: qOut.value + 2 * kvOut.value,
    declared: qOut.declared || kvOut.declared,
    why: `(${heads} + 2 × ${kvHeads}) heads × head dim ${headDim}`,
  }

  const layers = checkLayers(placed, declared.layers, source, layerRoles, warnings)
  if (perLayer && perLayer.values.length !== layers)
    throw source!.fail(`${perLayer.key} lists ${perLayer.values.length} widths for ${layers} decoder layers`)
  const interByLayer = perLayer?.values.map((value, layer): Dim => ({
    value,
    declared: true,
    why: `${perLayer.key}[${layer}] ${value}`,
  }))

  checkShapes(placed, { hidden, embedWidth, vocab, inter, interByLayer, qOut, kvOut, qkvOut }, source, warnings)

  return {
    layers,
    hiddenSize: hidden.value,
    heads,
    kvHeads,
    headDim,
    intermediateSize: inter.value,
    ...(perLayer ? { intermediateSizes: [...perLayer.values] } : {}),
    vocabSize: vocab.value,
    embedWidth: embedWidth.value,
  }
}

function checkLayers(
  placed: Placed[],
  declared: DeclaredValue | undefined,
  source: DeclaredSource | null,
  layerRoles: readonly TensorRole[],
  warnings: string[],
): number {
  const present = new Map<number, Set<TensorRole>>()
  for (const { place } of placed) {
    if (place.layer === null) continue
    let roles = present.get(place.layer)
    if (!roles) present.set(place.layer, (roles = new Set()))
    if (!place.bias) roles.add(place.role)
  }
  let highest = -1
  for (const layer of present.keys()) highest = Math.max(highest, layer)
  if (declared && declared.value !== highest + 1) {
    const held = highest < 0 ? 'no decoder-layer tensors' : `tensors for layers 0..${highest}`
    throw source!.fail(`${declared.key} is ${declared.value}, but the model holds ${held}`)
  }
  const layers = declared?.value ?? highest + 1
  // Reported without walking every index up to `layers`: a hostile name can claim layer 10^12.
  const gaps: string[] = []
  let gapCount = 0
  for (const layer of [...present.keys()].sort((a, b) => a - b)) {
    const roles = present.get(layer)!
    const missing = layerRoles.filter((r) => !roles.has(r))
    if (!missing.length) continue
    gapCount++
    if (gaps.length < MAX_SHAPE_WARNINGS) gaps.push(`layer ${layer}: ${missing.join(', ')}`)
  }
  const absent = layers - present.size
  for (let layer = 0, listed = 0; layer < layers && listed < MAX_SHAPE_WARNINGS; layer++) {
    if (present.has(layer)) continue
    listed++
    if (gaps.length < MAX_SHAPE_WARNINGS) gaps.push(`layer ${layer}: all tensors`)
  }
  gapCount += absent
  if (gapCount) {
    const more = gapCount - gaps.length
    warnings.push(`missing tensors: ${gaps.join('; ')}${more > 0 ? `; and ${more} more layers` : ''}`)
  }
  return layers
}

interface Dims {
  hidden: Dim
  embedWidth: Dim
  vocab: Dim
  inter: Dim
  /** Per-layer MLP widths, where declared. */
  interByLayer?: Dim[]
  qOut: Dim
  kvOut: Dim
  qkvOut: Dim
}

/** Expected [out, in] (or [length] for vectors); null entries are free (e.g. a position table's length). */
function expectedShape(place: TensorPlace, d: Dims): (Dim | null)[] | null {
  const inter = (place.layer !== null && d.interByLayer?.[place.layer]) || d.inter
  const linear: Partial<Record<TensorRole, [Dim | null, Dim]>> = {
    embed: [d.vocab, d.embedWidth],
    lm_head: [d.vocab, d.embedWidth],
    pos_embed: [null, d.hidden],
    q: [d.qOut, d.hidden],
    k: [d.kvOut, d.hidden],
    v: [d.kvOut, d.hidden],
    qkv: [d.qkvOut, d.hidden],
    o: [d.hidden, d.qOut],
    gate: [inter, d.hidden],
    up: [inter, d.hidden],
    fc1: [inter, d.hidden],
    down: [d.hidden, inter],
    fc2: [d.hidden, inter],
  }
  const role = place.role
  if (role === 'attn_norm' || role === 'ffn_norm' || role === 'final_norm') return [d.hidden]
  const dims = linear[role]
  if (!dims) return null
  if (place.bias) return role === 'embed' || role === 'pos_embed' ? null : [dims[0]]
  return dims
}

function checkShapes(placed: Placed[], d: Dims, source: DeclaredSource | null, warnings: string[]): void {
  const undeclaredProblems: string[] = []
  for (const p of placed) {
    const expected = expectedShape(p.place, d)
    if (!expected) continue
    const actual = expected.length === 2 ? outIn(p) : p.entry.shape.length === 1 ? [p.entry.shape[0]] : null
    const bad =
      actual === null
        ? expected.filter((x): x is Dim => x !== null)
        : expected.filter((x, i): x is Dim => x !== null && x.value !== actual[i])
    if (!bad.length) continue
    const want = expected.map((x) => (x ? String(x.value) : '*'))
    const order = expected.length === 2 && p.place.transposed ? ' (stored [in, out], compared as [out, in])' : ''
    const problem = `${p.entry.name} has shape [${p.entry.shape.join(', ')}]${order}, expected [${want.join(', ')}] from ${bad.map((x) => x.why).join(' and ')}`
    if (source && bad.some((x) => x.declared)) throw source.fail(problem)
    undeclaredProblems.push(problem)
  }
  if (undeclaredProblems.length) {
    const more = undeclaredProblems.length - MAX_SHAPE_WARNINGS
    warnings.push(...undeclaredProblems.slice(0, MAX_SHAPE_WARNINGS))
    if (more > 0) warnings.push(`${more} more tensors disagree with the geometry`)
  }
}
