// The kernels' own failure type. kernels/ is the bottom leaf of the tree and imports nothing from the
// engine, so a twin that is handed impossible sizes throws this; the engine translates it to its typed
// WhittleError ('validation') where the two meet (src-main/engine/errors.ts, kernelErrorCode).

/** A kernel (or its reference twin) was called with arguments it cannot run on. */
export class KernelArgumentError extends Error {
  /** The kernel's name, as the twins and the WASM exports spell it. */
  readonly kernel: string

  constructor(kernel: string, problem: string) {
    super(`${kernel}: ${problem}`)
    this.name = 'KernelArgumentError'
    this.kernel = kernel
  }
}
