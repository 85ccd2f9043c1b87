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

export function otherPlace(name: string): TensorPlace {
  return { role: 'other', layer: genericLayer(name), transposed: false }
}

export function buildArchitecture(model: ModelFiles, spec: AdapterSpec): ModelArchitecture {
  const warnings = [...(spec.warnings ?? [])]
  const places: Record<string, TensorPlace> = {}
  for (const t of model.tensors) places[t.name] = spec.place(t.name)
  const g = resolveGeometry(model.tensors, places, spec.geometry, spec.source, spec.layerRoles, warnings)

  const hasLmHead = model.tensors.some((t) => places[t.name].role === 'lm_head' && !places[t.name].bias)
  let tied = spec.tiedEmbeddings ?? !hasLmHead
  if (!tied && !hasLmHead) {
    warnings.push('embeddings are declared untied, but there is no lm_head tensor; reading the embedding as the output head')
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
