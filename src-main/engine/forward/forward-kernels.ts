// The forward pass's view of the kernel exports it calls inline on this thread (pointers are byte
// addresses into the shared kernel memory). matmul and attention go through parallel-ops instead.

export interface ForwardKernels {
  rmsnorm(x: number, w: number, out: number, T: number, H: number, eps: number): void
  layernorm(x: number, w: number, b: number, out: number, T: number, H: number, eps: number): void
  rope_half(x: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  rope_interleaved(x: number, cos: number, sin: number, T: number, nHeads: number, headDim: number): void
  silu_mul(g: number, u: number, out: number, n: number): void
  add_inplace(a: number, b: number, n: number): void
  log_softmax_nll(logits: number, targets: number, nll: number, T: number, V: number): void
}
