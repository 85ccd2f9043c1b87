// The one assembly step every family adapter ends with: place every tensor, resolve and check the
// geometry, settle tied embeddings. Family files only know names and config keys.

import type { TensorRole } from '../../contract/api'
import type { ModelFiles } from '../formats/types'
import type { DeclaredSource } from './declared-values'
import { resolveGeometry, type DeclaredGeometry } from './geometry'
import type { Family, ModelArchitecture, TensorPlace } from './types'

export interface AdapterSpec {
  family: Family
  declaredName: string
  /** Total: names the family does not know get role 'other'. */
  place(name: string): TensorPlace
  /** Weight roles every decoder layer should have; a missing one is a warning. */
  layerRoles: readonly TensorRole[]
  geometry: DeclaredGeometry
  /** Where declared numbers came from (null when nothing declares them: a bare safetensors file). */
  source: DeclaredSource | null
  maxPositions: number | null
  normEps: number | null
  ropeTheta: number | null
  /** As declared; undefined lets the presence of an lm_head tensor decide. */
  tiedEmbeddings: boolean | undefined
  ropeLayout: ModelArchitecture['ropeLayout']
  warnings?: string[]
}

/** Decoder-layer index from the usual block containers (`layers.N.`, `h.N.`, `blk.N.`, `blocks.N.`). */
export function genericLayer(name: string): number | null {
  const m = /(?:^|\.)(?:layers|h|blk|block|blocks|layer)\.(\d+)\./.exec(name)
  return m ? Number(m[1]) : null
}

/**
 * A name table for lookups keyed by file content (tensor-name parts, architecture names). A Map, because
 * a plain object answers `constructor` or `toString` with Object.prototype's functions.
 */
export function nameTable<V>(entries: Record<string, V>): ReadonlyMap<string, V> {
  return new Map(Object.entries(entries))
}

/**
 * An empty tensor-name -> place record. Null prototype and defineProperty, so a tensor named `__proto__`,
 * `constructor` or `toString` is an entry like any other and a name absent from the model reads undefined.
 */
export function placesRecord(): Record<string, TensorPlace> {
  return Object.create(null) as Record<string, TensorPlace>
}

export function setPlace(places: Record<string, TensorPlace>, name: string, place: TensorPlace): void {
  Object.defineProperty(places, name, { value: place, enumerable: true, writable: true, configurable: true })
}

/** Names that are Object.prototype members: no architecture is called that, and code indexing by them breaks. */
export function isBuiltinName(name: string): boolean {
  return name === '__proto__' || name in Object.prototype
}

export function otherPlace(name: string): TensorPlace {
  return { role: 'other', layer: genericLayer(name), transposed: false }
}

export function buildArchitecture(model: ModelFiles, spec: AdapterSpec): ModelArchitecture {
  const warnings = [...(spec.warnings ?? [])]
  const places = placesRecord()
  for (const t of model.tensors) setPlace(places, t.name, spec.place(t.name))
  const g = resolveGeometry(model.tensors, places, spec.geometry, spec.source, spec.layerRoles, warnings)

  const hasLmHead = model.tensors.some((t) => places[t.name].role === 'lm_head' && !places[t.name].bias)
  let tied = spec.tiedEmbeddings ?? !hasLmHead
  if (!tied && !hasLmHead) {
    warnings.push(
      'embeddings are declared untied, but there is no lm_head tensor; reading the embedding as the output head',
    )
    tied = true
  }

  return {
    family: spec.family,
    declared: spec.declaredName,
    layers: g.layers,
    hiddenSize: g.hiddenSize,
    heads: g.heads,
    kvHeads: g.kvHeads,
    headDim: g.headDim,
    intermediateSize: g.intermediateSize,
    ...(g.intermediateSizes ? { intermediateSizes: g.intermediateSizes } : {}),
    vocabSize: g.vocabSize,
    maxPositions: spec.maxPositions,
    normEps: spec.normEps,
    ropeTheta: spec.ropeTheta,
    tiedEmbeddings: tied,
    ropeLayout: spec.ropeLayout,
    places,
    warnings,
  }
}
