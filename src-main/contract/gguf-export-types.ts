// The GGUF types an export can ask for, declared once: the engine's type policy, the CLI's --gguf-type
// and the Export dialog all read this list. Pure types give every 2-D tensor the type (llama-quantize
// --pure); Q4_K_M and Q4_K_S are llama.cpp's per-tensor mixes.

export const GGUF_EXPORT_TYPES = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q6_K', 'Q5_1', 'Q5_0', 'Q5_K', 'Q4_1', 'Q4_0', 'Q4_K',
  'IQ4_NL', 'IQ4_XS', 'Q3_K', 'Q2_K', 'TQ2_0', 'TQ1_0', 'Q4_K_M', 'Q4_K_S',
] as const

export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number]
