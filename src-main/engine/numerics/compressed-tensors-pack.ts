// compressed-tensors' "pack-quantized" layout (what vLLM serves from llm-compressor) and its decoding.
//
// compressed-tensors quantizes to signed integers, q_s ∈ [−2^(b−1), 2^(b−1) − 1], and packs q_s + 2^(b−1);
// an unsigned code q = q_s + 2^(b−1) is therefore exactly the packed value, and the same holds for the
// zero point (symmetric: z = 2^(b−1), the signed zero 0). Dequantization (q_s − z_s)·s = (q − z)·s.
// weight_packed [out, ceil(in·b/32)] packs each output row along the input dimension (pack_to_int32,
// dim 1); weight_zero_point [ceil(out·b/32), groups] packs each group's zeros along the output
// dimension (dim 0). Sources: vllm-project/compressed-tensors compressors/pack_quantized, quant_config.py.

import { WhittleError } from '../errors'
import { packColsInt32, packRowsInt32, unpackColsInt32, unpackRowsInt32 } from './bit-fields'

/** The tensors of one packed Linear, as read back (scales already decoded to f32). */
export interface CompressedTensorsLinear {
  packed: Int32Array
  /** [out, groups] as f32 */
  scale: Float32Array
  /** packed zero points, or null (symmetric: 2^(b−1)) */
  zeroPoint: Int32Array | null
  shape: Int32Array
  gIdx: Int32Array | null
}

/** weight_packed: unsigned codes [out, in] → int32 [out, ceil(in·b/32)]. */
export function packCompressedTensorsWeight(
  codes: ArrayLike<number>,
  out: number,
  inputs: number,
  bits: number,
): Int32Array {
  return packRowsInt32(codes, out, inputs, bits)
}

/** weight_zero_point: zeros [groups, out] (the quantizer's order) → int32 [ceil(out·b/32), groups]. */
export function packCompressedTensorsZeros(
  zeros: ArrayLike<number>,
  groups: number,
  out: number,
  bits: number,
): Int32Array {
  const byOutput = new Int32Array(zeros.length)
  for (let g = 0; g < groups; g++) for (let c = 0; c < out; c++) byOutput[c * groups + g] = zeros[g * out + c]
  return packColsInt32(byOutput, out, groups, bits)
}

/** W [out, in] decoded as compressed-tensors does: (q − z) · scale[c, g_idx[i] or i / group_size]. */
export function dequantizeCompressedTensors(t: CompressedTensorsLinear, bits: number, groupSize: number): Float32Array {
  const [out, inputs] = t.shape
  const groups = t.scale.length / out
  if (!Number.isInteger(groups) || groups < 1)
    throw new WhittleError('format', null, `weight_scale has ${t.scale.length} values for ${out} outputs`)
  const codes = unpackRowsInt32(t.packed, out, inputs, bits)
  const zeros = t.zeroPoint ? unpackColsInt32(t.zeroPoint, out, groups, bits) : null
  const zSym = 1 << (bits - 1)
  const w = new Float32Array(out * inputs)
  for (let c = 0; c < out; c++) {
    for (let i = 0; i < inputs; i++) {
      const g = t.gIdx ? t.gIdx[i] : groupSize > 0 ? Math.floor(i / groupSize) : 0
      if (g < 0 || g >= groups)
        throw new WhittleError('format', null, `input ${i} maps to group ${g}, outside 0..${groups - 1}`)
      const z = zeros ? zeros[c * groups + g] : zSym
      w[c * inputs + i] = Math.fround(t.scale[c * groups + g] * (codes[c * inputs + i] - z))
    }
  }
  return w
}
