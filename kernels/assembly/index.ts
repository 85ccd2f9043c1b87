// The kernel module's exports, listed by name so helpers shared between files stay internal.
// Every kernel works on raw pointers into one shared memory that several worker threads instantiate at
// once, so nothing here allocates or keeps state between calls. Host-side types: kernels/host/exports.ts.

export { convert_f16, convert_bf16, convert_f8e4m3, convert_f8e5m2 } from './convert'
export { dequant_q8_0, dequant_q4_0, dequant_q4_k, dequant_q5_k, dequant_q6_k } from './ggml-dequant'
export { moments } from './stats'
export { histogram } from './histogram'
export { row_absmax_sumsq, col_absmax_sumsq, col_input_stats } from './channels'
export { hessian_accumulate, hessian_chunk_tokens } from './hessian'
export { pool_absmax } from './pool'
export { scan_rows } from './scan'

/** First byte past the module's static data: the JS side hands out memory from here on. */
export function heap_base(): usize {
  return __heap_base
}

// Forward-pass kernels (CPU inference: perplexity and calibration). Twins in kernels/reference/.
export { matmul_nt, matmul_nt_bias } from './matmul'
export { rmsnorm, layernorm } from './norm'
export { rope_half, rope_interleaved } from './rope'
export { attention_causal } from './attention'
export { silu_mul, gelu_tanh, gelu_erf, relu, add_inplace, add_bias_rows } from './activation'
export { log_softmax_nll, softmax_exp2, softmax_exp2_min } from './softmax'

// GGUF quantizers (f32 -> Q8_0, Q4_0, Q4_K, Q6_K, byte-exact with llama.cpp) and the f32 -> f16 encoder.
// Twin: kernels/reference/ggml-quantize.ts.
export { quantize_q8_0, quantize_q4_0, quantize_q4_k, quantize_q5_k, quantize_q6_k, encode_f16 } from './ggml-quantize'

// The other GGUF block types llama-quantize writes, quantized byte-exactly and dequantized with SIMD.
// Twins: kernels/reference/ggml-{quantize,dequant}-{legacy,kquants,iq,ternary}.ts.
export { dequant_q4_1, dequant_q5_0, dequant_q5_1 } from './ggml-dequant-legacy'
export { dequant_q2_k, dequant_q3_k } from './ggml-dequant-kquants'
export { dequant_iq4_nl, dequant_iq4_xs } from './ggml-dequant-iq'
export { dequant_tq1_0, dequant_tq2_0 } from './ggml-dequant-ternary'
export { quantize_q4_1, quantize_q5_0, quantize_q5_1 } from './ggml-quantize-legacy'
export { quantize_q2_k, quantize_q3_k } from './ggml-quantize-kquants'
export { quantize_iq4_nl, quantize_iq4_xs, quantize_iq4_nl_imatrix, quantize_iq4_xs_imatrix } from './ggml-quantize-iq'
export { quantize_tq1_0, quantize_tq2_0 } from './ggml-quantize-ternary'
// With an importance matrix (llama-quantize --imatrix), row by row. Twin: kernels/reference/ggml-quantize-imatrix.ts.
export {
  quantize_q4_0_imatrix, quantize_q4_1_imatrix, quantize_q5_0_imatrix, quantize_q5_1_imatrix, quantize_q2_k_imatrix,
  quantize_q3_k_imatrix, quantize_q4_k_imatrix, quantize_q5_k_imatrix, quantize_q6_k_imatrix,
} from './ggml-quantize-imatrix'

// f64 linear algebra for GPTQ/SparseGPT: Hessian accumulation, Cholesky, triangular inverse, Gram product.
// Twin: kernels/reference/linalg.ts.
export {
  cholesky_lower, invert_lower, linalg_panel_rows, cholesky_panel, cholesky_trailing,
  cholesky_finish, invert_lower_panel, invert_lower_below, gptq_block_rows,
} from './linalg'

// Backward-pass kernels (training: distillation, fine-tuning). Twins in kernels/reference/backward-*.ts.
export { matmul_nn, matmul_tn_acc } from './backward-linear'
export { rmsnorm_backward } from './backward-norm'
export { rope_half_backward, rope_interleaved_backward } from './backward-rope'
export { attention_causal_backward } from './backward-attention'
export { silu_mul_backward } from './backward-activation'
export { distill_loss } from './backward-loss'
