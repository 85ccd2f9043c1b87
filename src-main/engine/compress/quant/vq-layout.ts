// Where GPTVQ's codebooks sit in a Linear [rows, cols]: each row is cut into vectors of d consecutive
// columns; a codebook serves one block of `columnsPerGroup` columns × `rowsPerGroup` rows (the paper's
// groups: e.g. 256 columns × 32 rows = 8192 weights). The last column group and the last row block may
// be smaller. Declared once here: the quantizer, the codebook update and the bits-per-weight count read it.

import { WhittleError } from '../../errors'
import { codebookBits, type CodebookDtype } from './vq-codebook'

/** What the geometry depends on. */
export interface VqShape {
  /** Vector dimension d. */
  dim: number
  /** Index bits per weight: each vector of d weights picks one of k = 2^(bits·d) entries. */
  bits: number
  /** Weights per codebook (before fitting to the tensor's shape). */
  groupSize: number
  columnsPerGroup: number
  codebookDtype: CodebookDtype
}

export class VqLayout {
  /** Entries per codebook. */
  readonly k: number
  readonly d: number
  /** Columns per group in this tensor (≤ cols, a multiple of d). */
  readonly cpg: number
  /** Rows per codebook in this tensor. */
  readonly rpg: number
  readonly colGroups: number
  readonly rowGroups: number
  /** Vectors per row (cols / d). */
  readonly vectorsPerRow: number

  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly shape: VqShape,
    name = 'a weight',
  ) {
    const d = shape.dim
    this.d = d
    this.k = 2 ** Math.round(shape.bits * d)
    if (cols % d !== 0)
      throw new WhittleError('validation', null, `gptvq: ${name} has ${cols} columns, not a multiple of dim ${d}`)
    this.cpg = Math.min(shape.columnsPerGroup, cols)
    this.rpg = Math.min(rows, Math.max(1, Math.floor(shape.groupSize / this.cpg)))
    this.colGroups = Math.ceil(cols / this.cpg)
    this.rowGroups = Math.ceil(rows / this.rpg)
    this.vectorsPerRow = cols / d
  }

  get codebooks(): number {
    return this.colGroups * this.rowGroups
  }

  /** The codebook of the vector that starts at (row r, column c). */
  codebookOf(r: number, c: number): number {
    return Math.floor(c / this.cpg) * this.rowGroups + Math.floor(r / this.rpg)
  }

  /** Stored bits per weight: the index bits plus every codebook of the tensor spread over its weights. */
  bitsPerWeight(): number {
    const overhead = this.codebooks * codebookBits(this.k, this.d, this.shape.codebookDtype)
    return Math.log2(this.k) / this.d + overhead / (this.rows * this.cols)
  }

  /** The weight the codebooks (concatenated, codebook-major, k × d each) and the assignments decode to. */
  decode(centroids: ArrayLike<number>, assignments: Int32Array, out: Float32Array): Float32Array {
    const { d, k, cols } = this
    for (let r = 0; r < this.rows; r++)
      for (let v = 0; v < this.vectorsPerRow; v++) {
        const c = v * d
        const at = (this.codebookOf(r, c) * k + assignments[r * this.vectorsPerRow + v]) * d
        for (let t = 0; t < d; t++) out[r * cols + c + t] = centroids[at + t]
      }
    return out
  }

  /** The adjoint of decode: sums each weight position of M into the centroid coordinate it decodes from. */
  gather(M: ArrayLike<number>, assignments: Int32Array): Float64Array {
    const { d, k, cols } = this
    const out = new Float64Array(this.codebooks * k * d)
    for (let r = 0; r < this.rows; r++)
      for (let v = 0; v < this.vectorsPerRow; v++) {
        const c = v * d
        const at = (this.codebookOf(r, c) * k + assignments[r * this.vectorsPerRow + v]) * d
        for (let t = 0; t < d; t++) out[at + t] += M[r * cols + c + t]
      }
    return out
  }
}
