// Which dtypes the WASM kernels decode to f32, and with which kernel. Every other dtype is decoded by
// the TS reference (formats/read.ts decodeToF32) on the calling thread.

import type { KernelName } from '../../../kernels/host/exports'
import type { DType } from '../formats/types'

export interface WasmDecoder {
  kernel: KernelName
  /** Elements per unit of the kernel's count argument (1 for plain dtypes, the block size for GGUF types). */
  perUnit: number
}

const DECODERS: Partial<Record<DType, WasmDecoder>> = {
  F16: { kernel: 'convert_f16', perUnit: 1 },
  BF16: { kernel: 'convert_bf16', perUnit: 1 },
  F8_E4M3: { kernel: 'convert_f8e4m3', perUnit: 1 },
  F8_E5M2: { kernel: 'convert_f8e5m2', perUnit: 1 },
  Q8_0: { kernel: 'dequant_q8_0', perUnit: 32 },
  Q4_0: { kernel: 'dequant_q4_0', perUnit: 32 },
  Q4_K: { kernel: 'dequant_q4_k', perUnit: 256 },
  Q5_K: { kernel: 'dequant_q5_k', perUnit: 256 },
  Q6_K: { kernel: 'dequant_q6_k', perUnit: 256 },
  Q4_1: { kernel: 'dequant_q4_1', perUnit: 32 },
  Q5_0: { kernel: 'dequant_q5_0', perUnit: 32 },
  Q5_1: { kernel: 'dequant_q5_1', perUnit: 32 },
  Q2_K: { kernel: 'dequant_q2_k', perUnit: 256 },
  Q3_K: { kernel: 'dequant_q3_k', perUnit: 256 },
  IQ4_NL: { kernel: 'dequant_iq4_nl', perUnit: 32 },
  IQ4_XS: { kernel: 'dequant_iq4_xs', perUnit: 256 },
  TQ1_0: { kernel: 'dequant_tq1_0', perUnit: 256 },
  TQ2_0: { kernel: 'dequant_tq2_0', perUnit: 256 },
}

export function wasmDecoder(dtype: DType): WasmDecoder | undefined {
  return DECODERS[dtype]
}
