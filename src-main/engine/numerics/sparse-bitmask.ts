// compressed-tensors' sparse layouts ("sparse-bitmask" and "sparse-24-bitmask", what llm-compressor writes
// for pruned models) and their decoding, on raw element bytes so any float dtype round-trips bit for bit.
//
// Both store a 2-D weight [rows, cols] as
// - bitmask: uint8 [rows, ceil(cols/8)], one bit per element, set where a value is stored; each row is
//   packed on its own, little bit order (element 8k+j of a row is bit j, value 1 << j, of byte k: numpy's
//   packbits(axis=-1, bitorder="little")), the spare high bits of a row's last byte are 0;
// - compressed: the stored values in row-major order, in the weight's own dtype.
// sparse-bitmask stores every nonzero (compressed is 1-D) plus row_offsets: int64 [rows], the index in
// compressed where each row starts (an exclusive prefix sum of the rows' counts). sparse-24-bitmask stores
// exactly 2 of every 4 consecutive elements of a row (compressed is [rows, cols/2]); a group with fewer
// than 2 nonzeros also stores zeros to make 2. Sources: vllm-project/compressed-tensors
// compressors/sparse_compressors/sparse_bitmask.py, sparse_24_bitmask.py, utils/helpers.py (pack_bitmasks).
//
// "Zero" here is the all-zero bit pattern (+0): a −0 is kept as a stored value, so decoding reproduces
// the weight exactly (torch's `!= 0` would drop it and decode +0). Pruning writes +0.

import { WhittleError } from '../errors'

/** Bytes of one bitmask row. */
export function bitmaskRowBytes(cols: number): number {
  return Math.ceil(cols / 8)
}

/** Whether element i (of elementSize bytes) is stored: any bit set. */
function isStored(raw: Uint8Array, i: number, elementSize: number): boolean {
  for (let b = i * elementSize, end = b + elementSize; b < end; b++) if (raw[b] !== 0) return true
  return false
}

/** Sets element i of row r in a packed bitmask. */
function setBit(bitmask: Uint8Array, rowBytes: number, r: number, c: number): void {
  bitmask[r * rowBytes + (c >> 3)] |= 1 << (c & 7)
}

function bitAt(bitmask: Uint8Array, rowBytes: number, r: number, c: number): boolean {
  return (bitmask[r * rowBytes + (c >> 3)] & (1 << (c & 7))) !== 0
}

/** Count of set bits in the first `cols` bits of each row. */
export function bitmaskRowCounts(bitmask: Uint8Array, rows: number, cols: number): number[] {
  const rowBytes = bitmaskRowBytes(cols)
  const counts: number[] = []
  for (let r = 0; r < rows; r++) {
    let n = 0
    for (let c = 0; c < cols; c++) if (bitAt(bitmask, rowBytes, r, c)) n++
    counts.push(n)
  }
  return counts
}

export interface SparseBitmaskParts {
  /** The stored values, elementSize bytes each, row-major. */
  compressed: Uint8Array
  bitmask: Uint8Array
  /** Index in compressed (in elements) where each row starts; sparse-bitmask only. */
  rowOffsets: number[]
}

/** sparse-bitmask: every nonzero element of raw [rows, cols] (elementSize bytes each). */
export function compressBitmask(raw: Uint8Array, rows: number, cols: number, elementSize: number): SparseBitmaskParts {
  const rowBytes = bitmaskRowBytes(cols)
  const bitmask = new Uint8Array(rows * rowBytes)
  const rowOffsets: number[] = []
  let stored = 0
  for (let i = 0; i < rows * cols; i++) if (isStored(raw, i, elementSize)) stored++
  const compressed = new Uint8Array(stored * elementSize)
  let at = 0
  for (let r = 0; r < rows; r++) {
    rowOffsets.push(at)
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c
      if (!isStored(raw, i, elementSize)) continue
      setBit(bitmask, rowBytes, r, c)
      compressed.set(raw.subarray(i * elementSize, (i + 1) * elementSize), at * elementSize)
      at++
    }
  }
  return { compressed, bitmask, rowOffsets }
}

/** Whether raw [rows, cols] is 2:4 sparse: cols a multiple of 4 and at most 2 nonzeros in each group of 4. */
export function isTwoFourSparse(raw: Uint8Array, rows: number, cols: number, elementSize: number): boolean {
  if (cols % 4 !== 0) return false
  for (let g = 0; g < (rows * cols) / 4; g++) {
    let n = 0
    for (let k = 0; k < 4; k++) if (isStored(raw, g * 4 + k, elementSize)) n++
    if (n > 2) return false
  }
  return true
}

/**
 * sparse-24-bitmask: two elements of every group of 4, the nonzeros first, then the group's first zeros
 * (compressed-tensors keeps the two largest |w|; for a 2:4 weight both choices decode to the same values).
 */
export function compressTwoFour(
  raw: Uint8Array,
  rows: number,
  cols: number,
  elementSize: number,
): Omit<SparseBitmaskParts, 'rowOffsets'> {
  if (!isTwoFourSparse(raw, rows, cols, elementSize))
    throw new WhittleError('validation', null, `a ${rows}×${cols} weight is not 2:4 sparse`)
  const rowBytes = bitmaskRowBytes(cols)
  const bitmask = new Uint8Array(rows * rowBytes)
  const compressed = new Uint8Array((rows * cols * elementSize) / 2)
  let at = 0
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += 4) {
      const base = r * cols + c0
      const keep = [0, 1, 2, 3].filter((k) => isStored(raw, base + k, elementSize))
      for (let k = 0; keep.length < 2; k++) if (!keep.includes(k)) keep.push(k)
      for (const k of keep.sort((a, b) => a - b)) {
        setBit(bitmask, rowBytes, r, c0 + k)
        const i = base + k
        compressed.set(raw.subarray(i * elementSize, (i + 1) * elementSize), at * elementSize)
        at++
      }
    }
  }
  return { compressed, bitmask }
}

/**
 * The dense raw bytes [rows, cols] of a sparse weight: compressed's values placed, in order, where the
 * bitmask is set, zeros elsewhere. Checks that the bitmask has one row of ceil(cols/8) bytes per weight
 * row, that it flags as many elements as compressed holds, and, given row offsets, that each is where
 * its row's values start.
 */
export function decompressBitmask(
  compressed: Uint8Array,
  bitmask: Uint8Array,
  rows: number,
  cols: number,
  elementSize: number,
  rowOffsets: ArrayLike<number> | null,
): Uint8Array {
  const rowBytes = bitmaskRowBytes(cols)
  if (bitmask.length !== rows * rowBytes)
    throw new WhittleError(
      'format',
      null,
      `the bitmask has ${bitmask.length} bytes, but ${rows} rows of ${cols} elements need ${rows * rowBytes}`,
    )
  if (compressed.length % elementSize !== 0)
    throw new WhittleError('format', null, `compressed has ${compressed.length} bytes, not whole elements`)
  const counts = bitmaskRowCounts(bitmask, rows, cols)
  const total = counts.reduce((a, b) => a + b, 0)
  const values = compressed.length / elementSize
  if (total !== values)
    throw new WhittleError('format', null, `the bitmask flags ${total} elements, but compressed holds ${values}`)
  if (rowOffsets) {
    if (rowOffsets.length !== rows)
      throw new WhittleError('format', null, `row_offsets has ${rowOffsets.length} entries for ${rows} rows`)
    let start = 0
    for (let r = 0; r < rows; r++) {
      if (rowOffsets[r] !== start)
        throw new WhittleError(
          'format',
          null,
          `row_offsets[${r}] is ${rowOffsets[r]}, but row ${r}'s values start at ${start} of ${values}`,
        )
      start += counts[r]
    }
  }
  const dense = new Uint8Array(rows * cols * elementSize)
  let at = 0
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (!bitAt(bitmask, rowBytes, r, c)) continue
      dense.set(compressed.subarray(at * elementSize, (at + 1) * elementSize), (r * cols + c) * elementSize)
      at++
    }
  }
  return dense
}
