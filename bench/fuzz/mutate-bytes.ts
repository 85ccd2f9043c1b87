// Format-blind mutations of a byte buffer: what a bad disk, a cut-off download or a careless edit does.
// Each returns a new buffer (the seed stays pristine) and a short description for the findings file.

import type { Rng } from './prng'

export interface Mutated {
  bytes: Uint8Array
  what: string
  /** Names of the tensors the mutation aimed at, when it aimed at any. */
  targets?: string[]
}

/** Byte values that sit on parser boundaries (sign bits, all-ones, ASCII structure). */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x5c, 0xc0, 0xed, 0xf8,
]

/** Little-endian words that sit on integer boundaries. */
const INTERESTING_WORDS: bigint[] = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0xffn,
  0x7fffn,
  0x8000n,
  0xffffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  0x1fffffffffffffn,
  0x20000000000000n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xffffffffffffffffn,
]

/** Offset into the buffer, biased towards its start (where headers live) half of the time. */
export function position(rng: Rng, length: number, headerBytes = 4096): number {
  if (length === 0) return 0
  return rng.chance(0.5) ? rng.int(Math.min(length, headerBytes)) : rng.int(length)
}

function writeWord(out: Uint8Array, at: number, value: bigint, width: number): void {
  for (let i = 0; i < width && at + i < out.length; i++) out[at + i] = Number((value >> BigInt(8 * i)) & 0xffn)
}

export function mutateBytes(src: Uint8Array, rng: Rng, headerBytes = 4096): Mutated {
  const kind = rng.weighted({
    flipByte: 3,
    flipBit: 3,
    interestingByte: 2,
    interestingWord: 2,
    truncate: 2,
    insert: 2,
    remove: 1,
    duplicate: 1,
    multi: 2,
  })
  const at = position(rng, src.length, headerBytes)
  switch (kind) {
    case 'flipByte': {
      const out = src.slice()
      out[at] = rng.int(256)
      return { bytes: out, what: `byte ${at} := ${out[at]}` }
    }
    case 'flipBit': {
      const out = src.slice()
      const bit = rng.int(8)
      out[at] ^= 1 << bit
      return { bytes: out, what: `bit ${bit} of byte ${at} flipped` }
    }
    case 'interestingByte': {
      const out = src.slice()
      out[at] = rng.pick(INTERESTING_BYTES)
      return { bytes: out, what: `byte ${at} := ${out[at]}` }
    }
    case 'interestingWord': {
      const out = src.slice()
      const width = rng.pick([2, 4, 8])
      const v = rng.pick(INTERESTING_WORDS)
      writeWord(out, at, v, width)
      return { bytes: out, what: `${width}-byte word at ${at} := ${v}` }
    }
    case 'truncate': {
      const keep = rng.chance(0.5) ? at : rng.int(src.length + 1)
      return { bytes: src.slice(0, keep), what: `truncated to ${keep} bytes` }
    }
    case 'insert': {
      const n = 1 + rng.small(256)
      const fill = new Uint8Array(n).map(() => (rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256)))
      const out = new Uint8Array(src.length + n)
      out.set(src.subarray(0, at))
      out.set(fill, at)
      out.set(src.subarray(at), at + n)
      return { bytes: out, what: `${n} bytes inserted at ${at}` }
    }
    case 'remove': {
      const n = Math.min(src.length - at, 1 + rng.small(256))
      const out = new Uint8Array(src.length - n)
      out.set(src.subarray(0, at))
      out.set(src.subarray(at + n), at)
      return { bytes: out, what: `${n} bytes removed at ${at}` }
    }
    case 'duplicate': {
      const n = Math.min(src.length - at, 1 + rng.small(512))
      const to = position(rng, src.length, headerBytes)
      const out = new Uint8Array(src.length + n)
      out.set(src.subarray(0, to))
      out.set(src.subarray(at, at + n), to)
      out.set(src.subarray(to), to + n)
      return { bytes: out, what: `${n} bytes from ${at} copied in at ${to}` }
    }
    case 'multi': {
      const out = src.slice()
      const n = 2 + rng.small(30)
      for (let i = 0; i < n; i++) out[position(rng, out.length, headerBytes)] = rng.int(256)
      return { bytes: out, what: `${n} random bytes overwritten` }
    }
  }
}
