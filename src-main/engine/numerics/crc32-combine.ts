// CRC-32 of a concatenation from the CRCs of its parts: crc32Combine(CRC(A), CRC(B), |B|) = CRC(A‖B).
// Hashing can then be split (per block, per worker slice) and joined in order, the bytes read only once.
// CRC-32 is affine over GF(2): appending a zero bit to the message maps the (pre-inverted) register
// through a fixed 32×32 bit matrix, and appending n zero bytes through that matrix to the power 8n. So
// CRC(A‖B) = M^(8|B|)·CRC(A) ⊕ CRC(B), where the shared initial and final XORs cancel (CRC(A‖0^|B|)
// carries A's, and CRC(B) the zero prefix's). M^(8|B|) is applied as a product of the squarings
// M^8, M^16, M^32, … picked by the bits of |B|: about log2 |B| matrix-vector products of 32 XORs each.
// Polynomial: the reflected 0xEDB88320 (zlib's, and the kernels' crc32.ts).

import { WhittleError } from '../errors'

const POLY = 0xedb88320

/** A 32×32 GF(2) matrix as its 32 columns: column i is the image of the register's bit i. */
type Gf2Matrix = Uint32Array

/** The matrix applied to a vector: the XOR of the columns of the vector's set bits. */
function apply(matrix: Gf2Matrix, vector: number): number {
  let sum = 0
  for (let i = 0, v = vector >>> 0; v !== 0; i++, v >>>= 1) if (v & 1) sum ^= matrix[i]
  return sum >>> 0
}

/** matrix · matrix. */
function square(matrix: Gf2Matrix): Gf2Matrix {
  return matrix.map((column) => apply(matrix, column))
}

/** One zero bit into the reflected register: shift right, XOR the polynomial when bit 0 falls out. */
function oneZeroBit(): Gf2Matrix {
  const m = new Uint32Array(32)
  m[0] = POLY
  for (let i = 1; i < 32; i++) m[i] = 1 << (i - 1)
  return m
}

/** ZERO_BYTES[k]: the register's map for 2^k zero bytes, built as needed (k < 53 covers every safe length). */
const ZERO_BYTES: Gf2Matrix[] = []

function zeroBytes(k: number): Gf2Matrix {
  if (ZERO_BYTES.length === 0) ZERO_BYTES.push(square(square(square(oneZeroBit()))))
  while (ZERO_BYTES.length <= k) ZERO_BYTES.push(square(ZERO_BYTES[ZERO_BYTES.length - 1]))
  return ZERO_BYTES[k]
}

/**
 * CRC-32 of A followed by B, from crcA = CRC-32(A), crcB = CRC-32(B) and lengthB = B's length in bytes
 * (a non-negative safe integer). A zero-length B gives crcA.
 */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (!Number.isSafeInteger(lengthB) || lengthB < 0)
    throw new WhittleError('validation', null, `crc32Combine: bad length ${lengthB}`)
  let register = crcA >>> 0
  // Bits of lengthB from the lowest; division, not >>>, so lengths past 2^32 work.
  for (let k = 0, n = lengthB; n > 0; k++, n = Math.floor(n / 2))
    if (n % 2 === 1) register = apply(zeroBytes(k), register)
  return (register ^ crcB) >>> 0
}
