// The kernels' exports as the JS side sees them: every pointer and size is a plain number
// (a byte offset into the shared kernel memory). Semantics: kernels/assembly/*, twins in kernels/reference/*.

export interface KernelExports {
  /** First free byte of the shared memory (past the module's static data). */
  heap_base(): number

  // Conversions to f32: dst is f32[n]; src and dst must not overlap.
  convert_f16(src: number, dst: number, n: number): void
  convert_bf16(src: number, dst: number, n: number): void
  convert_f8e4m3(src: number, dst: number, n: number): void
  convert_f8e5m2(src: number, dst: number, n: number): void

  // GGUF block dequantization: dst is f32[nblocks * block elements].
  dequant_q8_0(src: number, dst: number, nblocks: number): void
  dequant_q4_0(src: number, dst: number, nblocks: number): void
  dequant_q4_k(src: number, dst: number, nblocks: number): void
  dequant_q5_k(src: number, dst: number, nblocks: number): void
  dequant_q6_k(src: number, dst: number, nblocks: number): void

  /** Writes f64[11] (layout: MOMENT_* in kernels/reference/stats.ts) for f32[n] at ptr. */
  moments(ptr: number, n: number, out: number): void
  /** ACCUMULATES into u32 counts[bins + 2] (the last two: below lo, above hi). */
  histogram(ptr: number, n: number, lo: number, hi: number, bins: number, counts: number): void
  /** WRITES f32 absmax[rows] and f64 sumsq[rows]. */
  row_absmax_sumsq(ptr: number, rows: number, cols: number, outAbsmax: number, outSumsq: number): void
  /** ACCUMULATES into f32 absmax[cols] and f64 sumsq[cols]. */
  col_absmax_sumsq(ptr: number, rows: number, cols: number, outAbsmax: number, outSumsq: number): void
  /** ACCUMULATES into f32 absmax[cols], f64 sumAbs[cols] and f64 sumSq[cols], non-finite values included. */
  col_input_stats(ptr: number, rows: number, cols: number, outAbsmax: number, outSumAbs: number, outSumSq: number): void
  /** Fused moments + row/column absmax and Σx² of raw F32/F16/BF16 rows (kernels/assembly/scan.ts). */
  scan_rows(
    src: number,
    dtype: number,
    rows: number,
    cols: number,
    channels: number,
    out: number,
    rowAbsmax: number,
    rowSumsq: number,
    colAbsmax: number,
    colSumsq: number,
  ): void
  /** ACCUMULATES max |x| into f32 out[gridRows * gridCols]. */
  pool_absmax(
    ptr: number,
    chunkRows: number,
    cols: number,
    rowOffset: number,
    totalRows: number,
    gridRows: number,
    gridCols: number,
    out: number,
  ): void

  // Forward pass (f32, row-major). matmul and attention take an output/head range so workers can split them.
  /** y[T, N] = x[T, K] · w[N, K]ᵀ for outputs [n0, n1). */
  matmul_nt(x: number, w: number, y: number, T: number, K: number, N: number, n0: number, n1: number): void
  matmul_nt_bias(
    x: number,
    w: number,
    b: number,
    y: number,
    T: number,
    K: number,
    N: number,
    n0: number,
    n1: number,
  ): void
  rmsnorm(x: number, w: number, out: number, T: number, H: number, eps: number): void
  layernorm(x: number, w: number, b: number, out: number, T: number, H: number, eps: number): void
  /** In place; cos/sin are [T, headDim/2] tables (kernels/reference/rope.ts ropeTable). */
  rope_half(x: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  rope_interleaved(x: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  /** Heads [h0, h1); scratch holds attentionScratch(T) f32 (kernels/reference/attention.ts). */
  attention_causal(
    q: number,
    k: number,
    v: number,
    out: number,
    scratch: number,
    T: number,
    nHeads: number,
    nKV: number,
    headDim: number,
    h0: number,
    h1: number,
  ): void
  silu_mul(g: number, u: number, out: number, n: number): void
  gelu_tanh(x: number, out: number, n: number): void
  gelu_erf(x: number, out: number, n: number): void
  relu(x: number, out: number, n: number): void
  add_inplace(a: number, b: number, n: number): void
  add_bias_rows(x: number, b: number, T: number, N: number): void
  /** nll[t] (f64) = logsumexp(logits[t]) − logits[t, targets[t]]; targets are i32. */
  log_softmax_nll(logits: number, targets: number, nll: number, T: number, V: number): void
  /** Base-2 softmax terms 2^x below x = this are dropped (SOFTMAX_EXP2_MIN in kernels/reference/softmax.ts). */
  softmax_exp2_min(): number
  /** out[i] = attention's base-2 softmax term of x[i] (f32), i < n: SIMD lanes, then the scalar tail. */
  softmax_exp2(x: number, out: number, n: number): void

  // GGUF block quantization, byte-exact with llama.cpp: src is f32[nblocks * block elements], dst receives
  // nblocks blocks (34, 18, 144, 176, 210 bytes). src and dst must not overlap. The K-quants also take
  // `scratch`: QUANT_SCRATCH_BYTES of memory they may overwrite.
  quantize_q8_0(src: number, dst: number, nblocks: number): void
  quantize_q4_0(src: number, dst: number, nblocks: number): void
  quantize_q4_k(src: number, dst: number, nblocks: number, scratch: number): void
  quantize_q5_k(src: number, dst: number, nblocks: number, scratch: number): void
  quantize_q6_k(src: number, dst: number, nblocks: number, scratch: number): void
  /** dst is u16[n]: the IEEE half bits of src f32[n], rounded to nearest even. */
  encode_f16(src: number, dst: number, n: number): void

  // The other llama-quantize block types, same conventions. Q2_K, Q3_K, IQ4_NL and IQ4_XS also take `scratch`:
  // QUANT_SCRATCH_BYTES of memory they may overwrite (the others ignore a fourth argument).
  dequant_q4_1(src: number, dst: number, nblocks: number): void
  dequant_q5_0(src: number, dst: number, nblocks: number): void
  dequant_q5_1(src: number, dst: number, nblocks: number): void
  dequant_q2_k(src: number, dst: number, nblocks: number): void
  dequant_q3_k(src: number, dst: number, nblocks: number): void
  dequant_iq4_nl(src: number, dst: number, nblocks: number): void
  dequant_iq4_xs(src: number, dst: number, nblocks: number): void
  dequant_tq1_0(src: number, dst: number, nblocks: number): void
  dequant_tq2_0(src: number, dst: number, nblocks: number): void
  quantize_q4_1(src: number, dst: number, nblocks: number): void
  quantize_q5_0(src: number, dst: number, nblocks: number): void
  quantize_q5_1(src: number, dst: number, nblocks: number): void
  quantize_q2_k(src: number, dst: number, nblocks: number, scratch: number): void
  quantize_q3_k(src: number, dst: number, nblocks: number, scratch: number): void
  quantize_iq4_nl(src: number, dst: number, nblocks: number, scratch: number): void
  quantize_iq4_xs(src: number, dst: number, nblocks: number, scratch: number): void
  quantize_tq1_0(src: number, dst: number, nblocks: number): void
  quantize_tq2_0(src: number, dst: number, nblocks: number): void
  // With an importance matrix: src f32[rows, cols] (cols a whole number of blocks), dst the rows' blocks,
  // qw f32[cols] per-column importances (imatrix Σx² / count), scratch QUANT_SCRATCH_BYTES.
  quantize_q4_0_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q4_1_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q5_0_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q5_1_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q2_k_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q3_k_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q4_k_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q5_k_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_q6_k_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_iq4_nl_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void
  quantize_iq4_xs_imatrix(src: number, dst: number, rows: number, cols: number, qw: number, scratch: number): void

  // f64 linear algebra (GPTQ/SparseGPT), row-major; the exact operation order is in kernels/assembly/linalg.ts.
  /**
   * ACCUMULATES H[i][j] += Σ_t x[t][i]·x[t][j] into f64 H[K, K] for i ∈ [i0, i1), j ≥ i; x is f32[M, K];
   * f32 sums per chunk of hessian_chunk_tokens() tokens, added to H in f64.
   */
  hessian_accumulate(x: number, H: number, M: number, K: number, i0: number, i1: number): void
  /** Tokens per f32 chunk of hessian_accumulate (HESSIAN_CHUNK_TOKENS in kernels/reference/hessian.ts). */
  hessian_chunk_tokens(): number
  /** In place: f64 A[n, n] (upper triangle read) → lower Cholesky factor. Returns 0, or j + 1 if pivot j ≤ 0. */
  cholesky_lower(A: number, n: number): number
  /** In place: lower-triangular f64 L[n, n] → L⁻¹. */
  invert_lower(L: number, n: number): void
  // Their steps, for running the O(n³) parts across workers (same bits however the rows are split).
  /** Rows per panel of cholesky_lower and invert_lower. */
  linalg_panel_rows(): number
  /** Cholesky of panel [p0, p0 + panel): diagonal block and the panel's rows. Returns 0, or j + 1 if pivot j ≤ 0. */
  cholesky_panel(A: number, n: number, p0: number): number
  /** Cholesky trailing update of panel p0 on rows [r0, r1) ⊂ [p0 + panel, n). */
  cholesky_trailing(A: number, n: number, p0: number, r0: number, r1: number): void
  /** Cholesky's last step: the factor into the lower triangle, upper zeroed. */
  cholesky_finish(A: number, n: number): void
  /** Inverse of the lower-triangular L, panel p0's own rows. */
  invert_lower_panel(L: number, n: number, p0: number): void
  /** Inverse of L, rows [r0, r1) below panel p0: their updates from its rows. */
  invert_lower_below(L: number, n: number, p0: number, r0: number, r1: number): void
  /**
   * GPTQ's column loop inside the block [c0, c0 + count) for rows [r0, r1), its columns [c0 + from, c0 + to): f32
   * W[rows, cols] quantized in place on per-row grids f32[rows, 2] (scale, zero), errors into f32 err[rows, B],
   * feedback through f32 U[B, B] up to the block's end. zeroMask (u8[rows, B], or 0): weights quantized as 0.
   */
  gptq_block_rows(
    W: number,
    cols: number,
    c0: number,
    count: number,
    from: number,
    to: number,
    U: number,
    B: number,
    err: number,
    grids: number,
    maxq: number,
    r0: number,
    r1: number,
    zeroMask: number,
  ): void

  // Backward pass (training), f32 row-major; exact operation orders in kernels/assembly/backward-*.ts.
  /** y[T, K] = x[T, N] · w[N, K] for columns [k0, k1); acc ≠ 0 ACCUMULATES into y instead. */
  matmul_nn(x: number, w: number, y: number, T: number, N: number, K: number, k0: number, k1: number, acc: number): void
  /** ACCUMULATES dw[N, K] += dy[M, N]ᵀ · x[M, K] for rows [n0, n1). */
  matmul_tn_acc(dy: number, x: number, dw: number, M: number, N: number, K: number, n0: number, n1: number): void
  /** ACCUMULATES into dx[T, H] the gradient of rmsnorm(x) · dy (scale w frozen). */
  rmsnorm_backward(x: number, w: number, dy: number, dx: number, T: number, H: number, eps: number): void
  /** In place on a gradient [T, nHeads·headDim]: the rotation by −angle. */
  rope_half_backward(dx: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  rope_interleaved_backward(dx: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  /** KV heads [g0, g1): WRITES dq, ACCUMULATES dk and dv; scratch holds attentionBackwardScratch(T) f32. */
  attention_causal_backward(
    q: number,
    k: number,
    v: number,
    dout: number,
    dq: number,
    dk: number,
    dv: number,
    scratch: number,
    T: number,
    nHeads: number,
    nKV: number,
    headDim: number,
    g0: number,
    g1: number,
  ): void
  /** WRITES dg, du for out = silu(g) · u. */
  silu_mul_backward(g: number, u: number, dout: number, dg: number, du: number, n: number): void
  /** WRITES f64 stats[T, 2] = (ce, kl) and f32 dlogits[T, V]; targets i32 (< 0: skipped). */
  distill_loss(
    logits: number,
    teacher: number,
    targets: number,
    dlogits: number,
    stats: number,
    T: number,
    V: number,
    temperature: number,
    alpha: number,
    scale: number,
  ): void
}

export type KernelName = Exclude<keyof KernelExports, 'heap_base'>

/** Scratch bytes the K-quant quantizers, quantize_iq4_nl/xs and the *_imatrix kernels need (any alignment). */
export const QUANT_SCRATCH_BYTES = 8192

/** Every kernel typed above; a build lacking one of them is out of date. */
export const KERNEL_NAMES: readonly KernelName[] = [
  'convert_f16',
  'convert_bf16',
  'convert_f8e4m3',
  'convert_f8e5m2',
  'dequant_q8_0',
  'dequant_q4_0',
  'dequant_q4_k',
  'dequant_q5_k',
  'dequant_q6_k',
  'moments',
  'histogram',
  'row_absmax_sumsq',
  'col_absmax_sumsq',
  'col_input_stats',
  'pool_absmax',
  'scan_rows',
  'matmul_nt',
  'matmul_nt_bias',
  'rmsnorm',
  'layernorm',
  'rope_half',
  'rope_interleaved',
  'attention_causal',
  'silu_mul',
  'gelu_tanh',
  'gelu_erf',
  'relu',
  'add_inplace',
  'add_bias_rows',
  'log_softmax_nll',
  'softmax_exp2_min',
  'softmax_exp2',
  'quantize_q8_0',
  'quantize_q4_0',
  'quantize_q4_k',
  'quantize_q5_k',
  'quantize_q6_k',
  'encode_f16',
  'dequant_q4_1',
  'dequant_q5_0',
  'dequant_q5_1',
  'dequant_q2_k',
  'dequant_q3_k',
  'dequant_iq4_nl',
  'dequant_iq4_xs',
  'dequant_tq1_0',
  'dequant_tq2_0',
  'quantize_q4_1',
  'quantize_q5_0',
  'quantize_q5_1',
  'quantize_q2_k',
  'quantize_q3_k',
  'quantize_iq4_nl',
  'quantize_iq4_xs',
  'quantize_tq1_0',
  'quantize_tq2_0',
  'quantize_q4_0_imatrix',
  'quantize_q4_1_imatrix',
  'quantize_q5_0_imatrix',
  'quantize_q5_1_imatrix',
  'quantize_q2_k_imatrix',
  'quantize_q3_k_imatrix',
  'quantize_q4_k_imatrix',
  'quantize_q5_k_imatrix',
  'quantize_q6_k_imatrix',
  'quantize_iq4_nl_imatrix',
  'quantize_iq4_xs_imatrix',
  'hessian_accumulate',
  'hessian_chunk_tokens',
  'cholesky_lower',
  'invert_lower',
  'linalg_panel_rows',
  'cholesky_panel',
  'cholesky_trailing',
  'cholesky_finish',
  'invert_lower_panel',
  'invert_lower_below',
  'gptq_block_rows',
  'matmul_nn',
  'matmul_tn_acc',
  'rmsnorm_backward',
  'rope_half_backward',
  'rope_interleaved_backward',
  'attention_causal_backward',
  'silu_mul_backward',
  'distill_loss',
]
