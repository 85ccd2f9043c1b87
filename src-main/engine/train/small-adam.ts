// Adam on a flat vector in JS memory, for the few thousand numbers that train beside the kernels' Linears:
// CoFi's gate log α and Lagrange multipliers (compress/structure/cofi-gates.ts), the layer-distillation
// map W_layer (layer-distillation.ts). Plain Adam (Kingma & Ba), bias-corrected, no weight decay.

export class SmallAdam {
  private readonly m: Float64Array
  private readonly v: Float64Array
  private t = 0

  constructor(
    size: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    this.m = new Float64Array(size)
    this.v = new Float64Array(size)
  }

  /** One step on x with gradient grad: descends, or ascends with sign −1. */
  step(x: Float64Array | Float32Array, grad: ArrayLike<number>, lr: number, sign: 1 | -1 = 1): void {
    this.t++
    const c1 = 1 - this.beta1 ** this.t,
      c2 = 1 - this.beta2 ** this.t
    for (let i = 0; i < x.length; i++) {
      this.m[i] = this.beta1 * this.m[i] + (1 - this.beta1) * grad[i]
      this.v[i] = this.beta2 * this.v[i] + (1 - this.beta2) * grad[i] * grad[i]
      x[i] -= (sign * lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + this.eps)
    }
  }
}
