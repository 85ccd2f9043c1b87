// Reads a model's weights into kernel memory as the forward pass wants them: Linears as [out, in]
// (GPT-2's Conv1D [in, out] is transposed once here, so matmul_nt serves every family), biases found
// beside their weights, and every shape checked against the geometry before a kernel trusts it.
// A shape that disagrees is the file's fault: a kernel would otherwise read past the tensor.

import type { TensorRole } from '../../contract/api'
import { tensorName } from '../arch'
import { WhittleError } from '../errors'
import type { TensorEntry } from '../formats/types'
import type { LoadedModel } from '../model/loaded-model'
import type { WorkerPool } from '../pool/worker-pool'
import { loadTensor, type ArenaTensor } from '../pool/arena-tensors'
import { TensorScope, type Affine } from './block-context'

/** Writes src [rows, rowLen] to dst with dst row r taken from src row sourceRow(r). */
export function reorderRows(
  src: Float32Array,
  dst: Float32Array,
  rows: number,
  rowLen: number,
  sourceRow: (r: number) => number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = sourceRow(r) * rowLen
    dst.set(src.subarray(s, s + rowLen), r * rowLen)
  }
}

/** dst [cols, rows] = srcᵀ for src [rows, cols]. */
export function transpose(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[row + c]
  }
}

export class WeightLoader extends TensorScope {
  constructor(
    pool: WorkerPool,
    private readonly model: LoadedModel,
  ) {
    super(pool)
  }

  private get file(): string {
    return this.model.files.path
  }

  /** The weight (never a bias) holding `role`, or null when the model has none. */
  optionalEntry(layer: number | null, role: TensorRole): TensorEntry | null {
    const name = tensorName(this.model.arch, layer, role)
    return name ? this.model.entry(name) : null
  }

  entry(layer: number | null, role: TensorRole): TensorEntry {
    const e = this.optionalEntry(layer, role)
    if (!e)
      throw new WhittleError(
        'not-found',
        this.file,
        `no ${role} tensor${layer === null ? '' : ` in layer ${layer}`}; cannot run the model`,
      )
    return e
  }

  /** `<prefix>.bias` beside `<prefix>.weight`, if the model has it. */
  biasEntry(weight: TensorEntry): TensorEntry | null {
    if (!weight.name.endsWith('.weight')) return null
    const name = weight.name.slice(0, -'.weight'.length) + '.bias'
    return this.model.arch.places[name] ? this.model.entry(name) : null
  }

  requireShape(e: TensorEntry, expected: number[]): void {
    if (e.shape.length === expected.length && e.shape.every((d, i) => d === expected[i])) return
    throw new WhittleError(
      'format',
      this.file,
      `${e.name} has shape [${e.shape.join(', ')}], but the forward pass needs [${expected.join(', ')}] from the model's geometry`,
    )
  }

  /** The whole tensor as f32, optionally rewritten (same length) by `rearrange` into a fresh buffer. */
  async tensor(e: TensorEntry, rearrange?: (src: Float32Array, dst: Float32Array) => void): Promise<ArenaTensor> {
    const raw = this.adopt(await loadTensor(this.pool, e))
    if (!rearrange) return raw
    const out = this.alloc(raw.length)
    rearrange(raw.view(), out.view())
    this.drop(raw)
    return out
  }

  /**
   * A Linear as [out, in] with its bias when present. Weights the architecture marks as stored [in, out]
   * (Conv1D) are transposed. `sourceRow` reorders output rows (and bias entries) after that.
   */
  async linear(
    layer: number | null,
    role: TensorRole,
    out: number,
    inp: number,
    sourceRow?: (r: number) => number,
  ): Promise<Affine> {
    const e = this.entry(layer, role)
    const transposed = this.model.arch.places[e.name]?.transposed === true
    this.requireShape(e, transposed ? [inp, out] : [out, inp])
    const rearrange =
      transposed || sourceRow
        ? (src: Float32Array, dst: Float32Array): void => {
            if (!transposed) return reorderRows(src, dst, out, inp, sourceRow!)
            if (!sourceRow) return transpose(src, dst, inp, out)
            const t = new Float32Array(src.length)
            transpose(src, t, inp, out)
            reorderRows(t, dst, out, inp, sourceRow)
          }
        : undefined
    const w = await this.tensor(e, rearrange)
    const be = this.biasEntry(e)
    if (!be) return { w, b: undefined }
    this.requireShape(be, [out])
    return { w, b: await this.tensor(be, sourceRow && ((src, dst) => reorderRows(src, dst, out, 1, sourceRow))) }
  }

  /** A norm's scale [width] and, with `shift`, its bias (zeros when the model stores none). */
  async norm(layer: number | null, role: TensorRole, width: number, shift: boolean): Promise<Affine> {
    const e = this.entry(layer, role)
    this.requireShape(e, [width])
    const w = await this.tensor(e)
    if (!shift) return { w, b: undefined }
    const be = this.biasEntry(e)
    if (!be) {
      // The layernorm kernel always adds a bias; arena memory is not guaranteed zero.
      const zeros = this.alloc(width)
      zeros.view().fill(0)
      return { w, b: zeros }
    }
    this.requireShape(be, [width])
    return { w, b: await this.tensor(be) }
  }
}
