// llama.cpp's block quantization types as a fake-quant method: each Linear is quantized with the
// byte-exact kernels of any type llama-quantize writes (Q8_0 down to Q2_K, IQ4_NL/IQ4_XS, TQ1_0/TQ2_0)
// and dequantized back, so perplexity measures exactly what llama.cpp would run. Rows whose length is not
// a whole number of blocks fall back by the one table the GGUF export uses too (gguf-types/fallback.ts,
// llama.cpp's: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, ...; F16 where llama.cpp refuses the tensor), so
// a step's perplexity is that of the GGUF an export of the same type writes; the report says which
// tensors fell back and why.

import {
  compatibleGgufType,
  ggufRowBytes,
  quantizeTensorGguf,
  usesImportance,
  type GgufStorageType,
} from '../gguf-types/quantize-tensor'
import { GGUF_QUANT_TYPES, type GgufQuantType } from '../../../contract/gguf-export-types'
import { choiceParam, stringParam, type ParamSpec } from '../../../contract/method-params'
import { placeGgufTensor } from '../../arch/gguf-llama'
import { WhittleError } from '../../errors'
import { importanceFor, type ImatrixSource } from '../../formats/imatrix-data'
import { readImatrixFile } from '../../formats/imatrix-file'
import path from 'node:path'
import type { CompressionMethod, GroupContext, LinearToCompress } from './method'
import { ParamReader } from './params'

/** `imatrix: calibration`: importances from the recipe's calibration windows instead of a file. */
export const IMATRIX_FROM_CALIBRATION = 'calibration'

export interface GgufParams {
  type: GgufQuantType
  /** An imatrix file (GGUF or .dat; relative paths from the working folder), 'calibration', or null for none. */
  imatrix: string | null
  /** The file's imatrix, read by prepareStep. */
  imatrixSource?: ImatrixSource
}

function bitsPerWeight(type: GgufStorageType, cols: number): number {
  return (ggufRowBytes(type, cols) * 8) / cols
}

export const GGUF_PARAMS: readonly ParamSpec[] = [
  choiceParam('type', 'Q4_K', GGUF_QUANT_TYPES, 'llama.cpp block quantization type'),
  stringParam(
    'imatrix',
    'importance matrix, as llama-quantize --imatrix: a file (whittle imatrix or llama-imatrix; GGUF or .dat), or "calibration" for Σx² of the calibration windows',
    [IMATRIX_FROM_CALIBRATION],
  ),
]

/** Per imatrix, its entries by the (layer, role) they name, read through the GGUF naming of arch/. */
const entriesByPlace = new WeakMap<ImatrixSource, Map<string, string>>()

function entryNameFor(source: ImatrixSource, layer: number, role: string): string | null {
  let byPlace = entriesByPlace.get(source)
  if (!byPlace) {
    byPlace = new Map()
    for (const name of source.imatrix.entries.keys()) {
      const place = placeGgufTensor(name, true)
      if (place.layer !== null) byPlace.set(`${place.layer}:${place.role}`, name)
    }
    entriesByPlace.set(source, byPlace)
  }
  return byPlace.get(`${layer}:${role}`) ?? null
}

export const gguf: CompressionMethod<GgufParams> = {
  name: 'gguf',
  kind: 'quantize',
  summary: 'llama.cpp block quantization, byte-exact with llama-quantize, dequantized back for evaluation',
  params: GGUF_PARAMS,
  // Statistics (only for imatrix: calibration) come from the original model, as llama-imatrix's do.
  needs: { calibration: false, hessian: false, sequential: false },
  stepNeedsCalibration: (raw) => raw.imatrix === IMATRIX_FROM_CALIBRATION,
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, GGUF_PARAMS)
    const imatrix = r.optString('imatrix') ?? null
    if (imatrix === '') r.fail('imatrix', 'must name a file or be "calibration"')
    const p = { type: r.oneOf<GgufQuantType>('type'), imatrix }
    r.done()
    return p
  },
  async prepareStep(targets) {
    const read = new Map<string, Promise<ImatrixSource>>()
    for (const t of targets) {
      const file = t.params.imatrix
      if (file === null || file === IMATRIX_FROM_CALIBRATION) continue
      if (!read.has(file))
        read.set(
          file,
          readImatrixFile(path.resolve(file)).then(({ imatrix }) => ({ imatrix, file })),
        )
      t.params.imatrixSource = await read.get(file)!
    }
  },
  predict(p, _rows, cols) {
    const t = compatibleGgufType(p.type, cols)
    return { bitsPerWeight: bitsPerWeight(t.type, cols), format: t.type }
  },
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      const importance = usesImportance(compatibleGgufType(l.params.type, l.cols).type)
        ? importanceOf(ctx.input, l)
        : null
      const q = quantizeTensorGguf(ctx.pool, l.weight, l.rows, l.cols, l.params.type, { importance })
      l.weight.set(q.dequantized)
      const note = [importance ? `imatrix (${l.params.imatrix})` : '', q.fallback ?? ''].filter(Boolean).join('; ')
      return {
        name: l.name,
        bitsPerWeight: bitsPerWeight(q.type, l.cols),
        format: q.type,
        ...(note ? { note } : {}),
        // Kept for a GGUF export of this type, which then writes these bytes (export/gguf/kept-tensor.ts).
        ggufBytes: { type: q.type, bytes: q.bytes, imatrix: importance !== null },
      }
    })
  },
}

/**
 * The importances a Linear is quantized with: from its imatrix file's entry (none when the file has no
 * entry for it, as llama-quantize), or Σx² / tokens of its input over the calibration windows.
 */
function importanceOf(input: GroupContext['input'], l: LinearToCompress<GgufParams>): Float32Array | null {
  const p = l.params
  if (p.imatrix === null) return null
  if (p.imatrix === IMATRIX_FROM_CALIBRATION) {
    if (!input || input.tokens <= 0)
      throw new WhittleError(
        'validation',
        null,
        `gguf: ${l.name} has no calibration statistics for imatrix: calibration`,
      )
    return Float32Array.from(input.sumSq, (s) => s / input.tokens)
  }
  if (!p.imatrixSource)
    throw new WhittleError('validation', p.imatrix, `gguf: the importance matrix for ${l.name} was not read`)
  const name = entryNameFor(p.imatrixSource, l.layer, l.role)
  return name === null ? null : importanceFor(p.imatrixSource, name, l.cols)
}
