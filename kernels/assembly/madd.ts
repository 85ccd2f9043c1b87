// The one operation that differs between the two kernel builds (kernels/build.mjs): acc + x·w lane by lane.
// The default build (kernels.wasm) multiplies, then adds: two roundings, bit-exact with the TS twins on
// every machine. The relaxed-SIMD build (kernels-relaxed.wasm) compiles the same source with
// ASC_FEATURE_RELAXED_SIMD set, so this becomes f32x4.relaxed_madd: a fused multiply-add where the CPU has
// one (one rounding; results may differ from the twin in the last bits, and between machines), the same
// mul + add elsewhere. Its users keep their order of operations in both builds: matmul's products,
// attention's scores and weighted sums, the exponentials' polynomials (softmax.ts: SiLU, GELU, attention's
// terms, the perplexity loss). Their tolerances are tested in kernels/test/*-fused.test.ts.

/** acc + x·w, lane by lane: rounded twice (plain build) or, on FMA hardware, once (relaxed build). */
// @ts-ignore: decorator
@inline export function madd(acc: v128, x: v128, w: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(x, w, acc)
  return f32x4.add(acc, f32x4.mul(x, w))
}
