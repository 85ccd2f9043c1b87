// CRC-32 (the reflected polynomial 0xEDB88320, as zlib and GGUF verification use it), bit by bit from the
// definition: the tests' expectation, independent of zlib and of our table and combine code.

export function crc32Bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const b of bytes) {
    c ^= b
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1
  }
  return (c ^ 0xffffffff) >>> 0
}
