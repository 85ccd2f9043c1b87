// llama.cpp's block quantization types as a fake-quant method: each Linear is quantized with the
// byte-exact kernels of any type llama-quantize writes (Q8_0 down to Q2_K, IQ4_NL/IQ4_XS, TQ1_0/TQ2_0)
// and dequantized back, so perplexity measures exactly what llama.cpp would run. Rows whose length is not
// a whole number of blocks fall back to a compatible type (as llama.cpp does for the K-quants; it refuses
// the 32-element types outright), and the report says which tensors fell back and why.

import { compatibleGgufType, ggufRowBytes, quantizeTensorGguf, type GgufStorageType } from '../gguf-types/quantize-tensor'
import type { CompressionMethod } from './method'
import { ParamReader } from './params'

export const GGUF_QUANT_TYPES = [
  'Q8_0', 'Q6_K', 'Q5_1', 'Q5_0', 'Q5_K', 'Q4_1', 'Q4_0', 'Q4_K', 'IQ4_NL', 'IQ4_XS', 'Q3_K', 'Q2_K', 'TQ2_0', 'TQ1_0',
] as const
export type GgufQuantType = (typeof GGUF_QUANT_TYPES)[number]

export interface GgufParams {
  type: GgufQuantType
}

function bitsPerWeight(type: GgufStorageType, cols: number): number {
  return (ggufRowBytes(type, cols) * 8) / cols
}

export const gguf: CompressionMethod<GgufParams> = {
  name: 'gguf',
  kind: 'quantize',
  needs: { calibration: false, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where)
    const p = { type: r.oneOf('type', 'Q4_K', GGUF_QUANT_TYPES) }
    r.done()
    return p
  },
  predict(p, _rows, cols) {
    const t = compatibleGgufType(p.type, cols)
    return { bitsPerWeight: bitsPerWeight(t.type, cols), format: t.type }
  },
  async compressGroup(ctx) {
    return ctx.linears.map((l) => {
      const q = quantizeTensorGguf(ctx.pool, l.weight, l.rows, l.cols, l.params.type)
      l.weight.set(q.dequantized)
      return { name: l.name, bitsPerWeight: bitsPerWeight(q.type, l.cols), format: q.type, note: q.fallback }
    })
  },
}
