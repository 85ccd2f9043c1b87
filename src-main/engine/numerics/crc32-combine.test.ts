// crc32Combine against node:zlib's crc32 of the concatenation (an independent implementation): parts of
// zero, odd and power-of-two lengths, chains of many parts, and a length past 2^32 (zlib hashing 4 GB of
// zeros, about 2 s).

import { crc32 } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { isWhittleError } from '../errors'
import { crc32Combine } from './crc32-combine'

const bytes = (n: number, seed: number): Uint8Array => {
  let s = seed
  return Uint8Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24)
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

describe('crc32Combine', () => {
  it('gives CRC-32(A‖B) from CRC-32(A), CRC-32(B) and |B|, zero-length and odd lengths included', () => {
    const lengths = [0, 1, 2, 3, 7, 8, 15, 16, 17, 255, 256, 1000, 4095, 4096, 65537]
    for (const la of lengths)
      for (const lb of lengths) {
        const a = bytes(la, la * 31 + 1)
        const b = bytes(lb, lb * 17 + 2)
        expect(crc32Combine(crc32(a), crc32(b), lb), `|A| ${la}, |B| ${lb}`).toBe(crc32(concat(a, b)))
      }
  })

  it('joins many parts in order into the whole buffer’s CRC-32', () => {
    const whole = bytes(100_003, 9)
    const cuts = [0, 1, 1, 17, 4096, 4097, 33_333, 65_536, 99_999, 100_003]
    let crc = 0
    for (let i = 1; i < cuts.length; i++) {
      const part = whole.subarray(cuts[i - 1], cuts[i])
      crc = crc32Combine(crc, crc32(part), part.length)
    }
    expect(crc).toBe(crc32(whole))
  })

  it('handles a length past 2^32: A then 2^32 + 4099 zero bytes, against zlib hashing the zeros', () => {
    const a = bytes(100, 3)
    const length = 2 ** 32 + 4099
    const zeros = new Uint8Array(4 << 20)
    let want = crc32(a)
    let crcZeros = 0
    for (let done = 0; done < length; done += zeros.length) {
      const part = zeros.subarray(0, Math.min(zeros.length, length - done))
      want = crc32(part, want)
      crcZeros = crc32(part, crcZeros)
    }
    expect(crc32Combine(crc32(a), crcZeros, length)).toBe(want)
  })

  it('refuses a negative or fractional length with a typed error', () => {
    for (const bad of [-1, 1.5, Number.NaN]) {
      const e = (() => {
        try {
          crc32Combine(0, 0, bad)
        } catch (err) {
          return err
        }
      })()
      expect(isWhittleError(e) && e.code).toBe('validation')
    }
  })
})
