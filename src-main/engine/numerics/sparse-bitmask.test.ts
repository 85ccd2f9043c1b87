// The sparse layouts against bytes worked out by hand from compressed-tensors' definition (numpy
// packbits along each row, little bit order; values in row-major order; row_offsets the exclusive
// prefix sum), plus round trips and the decoder's refusals.

import { describe, expect, it } from 'vitest'
import { WhittleError } from '../errors'
import { bitmaskRowBytes, compressBitmask, compressTwoFour, decompressBitmask, isTwoFourSparse } from './sparse-bitmask'

const f32Bytes = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer)
const f32Values = (bytes: Uint8Array): number[] => Array.from(new Float32Array(bytes.slice().buffer))

describe('sparse-bitmask', () => {
  // Row 0 stores columns 1, 4, 8; row 1 stores its −0 at column 0 and 7 at column 7.
  const weight = [0, 1.5, 0, 0, -2, 0, 0, 0, 3, -0, 0, 0, 0, 0, 0, 0, 7, 0]

  it('packs each row little-endian in bits, values row-major, row offsets as a prefix sum', () => {
    const p = compressBitmask(f32Bytes(weight), 2, 9, 4)
    expect(bitmaskRowBytes(9)).toBe(2)
    // row 0: bits 1 and 4 → 0b0001_0010, bit 8 → byte 1 bit 0; row 1: bits 0 and 7 → 0b1000_0001.
    expect(Array.from(p.bitmask)).toEqual([0x12, 0x01, 0x81, 0x00])
    expect(f32Values(p.compressed)).toEqual([1.5, -2, 3, -0, 7])
    expect(Object.is(f32Values(p.compressed)[3], -0)).toBe(true)
    expect(p.rowOffsets).toEqual([0, 3])
  })

  it('decodes back bit for bit, −0 included, for 2-byte elements too', () => {
    const p = compressBitmask(f32Bytes(weight), 2, 9, 4)
    const back = decompressBitmask(p.compressed, p.bitmask, 2, 9, 4, p.rowOffsets)
    expect(Array.from(back)).toEqual(Array.from(f32Bytes(weight)))
    const halves = new Uint8Array(Uint16Array.from([0, 0x3c00, 0, 0x8000, 0xc000, 0, 0, 0]).buffer)
    const h = compressBitmask(halves, 2, 4, 2)
    expect(Array.from(h.bitmask)).toEqual([0b1010, 0b0001])
    expect(Array.from(decompressBitmask(h.compressed, h.bitmask, 2, 4, 2, h.rowOffsets))).toEqual(Array.from(halves))
  })

  it('refuses a bitmask of the wrong length, a count mismatch and row offsets that do not fit', () => {
    const p = compressBitmask(f32Bytes(weight), 2, 9, 4)
    const refuse = (f: () => unknown, message: RegExp): void => {
      try {
        f()
        expect.unreachable()
      } catch (e) {
        expect(e).toBeInstanceOf(WhittleError)
        expect((e as WhittleError).code).toBe('format')
        expect((e as Error).message).toMatch(message)
      }
    }
    refuse(
      () => decompressBitmask(p.compressed, p.bitmask.subarray(0, 3), 2, 9, 4, null),
      /bitmask has 3 bytes.*need 4/,
    )
    refuse(() => decompressBitmask(p.compressed.subarray(0, 16), p.bitmask, 2, 9, 4, null), /flags 5.*holds 4/)
    refuse(() => decompressBitmask(p.compressed, p.bitmask, 2, 9, 4, [0, 99]), /row_offsets\[1\] is 99.*start at 3/)
    refuse(() => decompressBitmask(p.compressed, p.bitmask, 2, 9, 4, [0]), /row_offsets has 1 entries for 2 rows/)
  })
})

describe('sparse-24-bitmask', () => {
  it('keeps two of every four: the nonzeros, then the first zeros of a sparser group', () => {
    const w = [0, 0, 0, 5, 1, 2, 0, 0, 0, -3, 4, 0, 0, 0, 0, 0]
    const p = compressTwoFour(f32Bytes(w), 2, 8, 4)
    // row 0 keeps columns 0, 3, 4, 5 → 0b0011_1001; row 1 keeps 1, 2, 4, 5 → 0b0011_0110.
    expect(Array.from(p.bitmask)).toEqual([0x39, 0x36])
    expect(f32Values(p.compressed)).toEqual([0, 5, 1, 2, -3, 4, 0, 0])
    expect(Array.from(decompressBitmask(p.compressed, p.bitmask, 2, 8, 4, null))).toEqual(Array.from(f32Bytes(w)))
  })

  it('recognises 2:4 and refuses what is not', () => {
    expect(isTwoFourSparse(f32Bytes([1, 0, 2, 0]), 1, 4, 4)).toBe(true)
    expect(isTwoFourSparse(f32Bytes([1, 3, 2, 0]), 1, 4, 4)).toBe(false)
    expect(isTwoFourSparse(f32Bytes([1, 0, 0, 0, 0, 0]), 1, 6, 4)).toBe(false)
    expect(() => compressTwoFour(f32Bytes([1, 3, 2, 0]), 1, 4, 4)).toThrow(WhittleError)
  })
})
