// Reference twin of kernels/assembly/scan.ts (the fused `scan_rows` kernel), built from the other twins so
// it defines the kernel by composition: each row is decoded to f32 (convert), its moments are those of
// `moments` over that row, its absmax and Σx² those of `rowAbsmaxSumsq`, the columns are accumulated by
// `colAbsmaxSumsq` one row at a time, and the rows' moments are merged in order with `mergeMoments`,
// starting from emptyMoments(). The kernel gives the same bits.

import { convertBF16, convertF16 } from './convert'
import { colAbsmaxSumsq, rowAbsmaxSumsq } from './channels'
import { emptyMoments, mergeMoments, moments, MOMENTS_LENGTH } from './stats'

/** The element encodings scan_rows reads directly, with their `dtype` argument. */
export const SCAN_DTYPE = { F32: 0, F16: 1, BF16: 2 } as const
export type ScanDtype = keyof typeof SCAN_DTYPE

const ELEMENT_BYTES: Record<ScanDtype, number> = { F32: 4, F16: 2, BF16: 2 }

/** Whether scan_rows reads this dtype's bytes directly. */
export function isScanDtype(dtype: string): dtype is ScanDtype {
  return Object.hasOwn(SCAN_DTYPE, dtype)
}

function decodeRow(dtype: ScanDtype, bytes: Uint8Array, out: Float32Array): void {
  const n = out.length
  if (dtype === 'F32') {
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes.subarray(0, n * 4))
    return
  }
  const halves = new Uint16Array(n)
  new Uint8Array(halves.buffer).set(bytes.subarray(0, n * 2))
  if (dtype === 'BF16') convertBF16(halves, out)
  else convertF16(halves, out)
}

/**
 * Moments (written to `out`, f64[11]) of `rows` × `cols` elements of `dtype` in `src`; with `channels`,
 * also WRITES rowAbsmax/rowSumsq[0..rows) and ACCUMULATES colAbsmax (max) and colSumsq (+=).
 */
export function scanRows(
  src: Uint8Array,
  dtype: ScanDtype,
  rows: number,
  cols: number,
  channels: boolean,
  out: Float64Array,
  rowAbsmax?: Float32Array,
  rowSumsq?: Float64Array,
  colAbsmax?: Float32Array,
  colSumsq?: Float64Array,
): void {
  if (out.length < MOMENTS_LENGTH) throw new RangeError(`scanRows: out must hold ${MOMENTS_LENGTH} values`)
  const rowBytes = cols * ELEMENT_BYTES[dtype]
  if (rows > 0 && cols > 0 && src.length < rows * rowBytes)
    throw new RangeError(
      `scanRows: ${rows}x${cols} ${dtype} needs ${rows * rowBytes} bytes, the source has ${src.length}`,
    )
  if (channels && !(rowAbsmax && rowSumsq && colAbsmax && colSumsq))
    throw new RangeError('scanRows: channels needs the row and column outputs')
  let acc = emptyMoments()
  const row = new Float32Array(Math.max(cols, 0))
  for (let r = 0; r < (cols > 0 ? rows : 0); r++) {
    decodeRow(dtype, src.subarray(r * rowBytes, (r + 1) * rowBytes), row)
    acc = mergeMoments(acc, moments(row))
    if (channels) {
      rowAbsmaxSumsq(row, 1, cols, rowAbsmax!.subarray(r, r + 1), rowSumsq!.subarray(r, r + 1))
      colAbsmaxSumsq(row, 1, cols, colAbsmax!, colSumsq!)
    }
  }
  out.set(acc)
}
