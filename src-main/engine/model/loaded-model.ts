// A model the engine has open: the format index, the architecture reading of it, and the summary the UI shows.
// Opening touches headers only; tensor data is streamed later by the jobs that need it.

import { randomUUID } from 'node:crypto'
import type { ModelSummary, TensorInfo } from '../../contract/api'
import { describeArchitecture } from '../arch'
import type { ModelArchitecture } from '../arch/types'
import { openModelFiles } from '../formats/open'
import { modelPackingLabel } from '../formats/packed-linear-label'
import type { ModelFiles, TensorEntry } from '../formats/types'
import { WhittleError } from '../errors'
import { declaredActivations } from '../formats/packed-linears'
import type { ActivationScheme } from '../numerics/compressed-tensors-w8a8'

/** Activation quantization the forward pass applies to a compressed model (fake-quant, f32 storage). */
export interface RuntimeQuant {
  /**
   * int8-per-token: dynamic symmetric int8 per token at the input of every Linear, and at the q/k/v
   * outputs (SmoothQuant). fp8-per-token: dynamic symmetric E4M3 per token at the input of every Linear
   * (llm-compressor's FP8_DYNAMIC). int8-per-token-inputs: int8 per token at Linear inputs only
   * (BitNet b1.58). The forward pass implements them (forward/activation-quant.ts).
   */
  activations: ActivationScheme
}

export type { ActivationScheme }

export interface LoadedModel {
  id: string
  files: ModelFiles
  arch: ModelArchitecture
  summary: ModelSummary
  tensors: TensorInfo[]
  entry(name: string): TensorEntry
  /** Activation quantization to apply when running this model (a W8A8 compression result). */
  runtime?: RuntimeQuant
}

export async function loadModel(path: string): Promise<LoadedModel> {
  return modelFromFiles(await openModelFiles(path))
}

/** A model over an index of tensors (opened from disk, or derived in memory by a structural step). */
export function modelFromFiles(files: ModelFiles): LoadedModel {
  const arch = describeArchitecture(files)
  const id = randomUUID()
  const byName = new Map(files.tensors.map((t) => [t.name, t]))
  const tensors: TensorInfo[] = files.tensors.map((t) => {
    const place = arch.places[t.name]
    return {
      name: t.name,
      shape: t.shape,
      dtype: t.dtype,
      byteLength: t.byteLength,
      role: place?.role ?? 'other',
      layer: place?.layer ?? null,
    }
  })
  const dtypes: Record<string, number> = {}
  let parameterCount = 0
  for (const t of files.tensors) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1
    parameterCount += t.shape.reduce((a, b) => a * b, 1)
  }
  const summary: ModelSummary = {
    id,
    path: files.path,
    format: files.format,
    quantization: modelPackingLabel(files.tensors),
    architecture: arch.family,
    declaredArchitecture: arch.declared,
    layers: arch.layers,
    hiddenSize: arch.hiddenSize,
    heads: arch.heads,
    kvHeads: arch.kvHeads,
    headDim: arch.headDim,
    intermediateSize: arch.intermediateSize,
    vocabSize: arch.vocabSize,
    parameterCount,
    dtypes,
    sizeOnDisk: files.sizeOnDisk,
    files: files.files,
    tensorCount: files.tensors.length,
    warnings: [...(files.warnings ?? []), ...arch.warnings],
  }
  // A W8A8 checkpoint (compressed-tensors with dynamic per-token input activations) runs as it was made.
  const activations = declaredActivations(files)
  return {
    id,
    files,
    arch,
    summary,
    tensors,
    ...(activations ? { runtime: { activations } } : {}),
    entry(name: string): TensorEntry {
      const e = byName.get(name)
      if (!e) throw new WhittleError('not-found', files.path, `no tensor named ${name}`)
      return e
    },
  }
}

/** Tensors in the order the overview wants them: by layer, then by the file's order. */
export function tensorsByLayer(model: LoadedModel): { entry: TensorEntry; info: TensorInfo }[] {
  return model.tensors
    .map((info) => ({ entry: model.entry(info.name), info }))
    .sort((a, b) => (a.info.layer ?? -1) - (b.info.layer ?? -1))
}
