// Re-reads a written GGUF with the project's reader and checks every tensor against what the export
// meant to write: name, ggml type, dims and bytes (by hash, in one sequential pass over the data section,
// read from the disk around the page cache where the OS allows it: tensor-hashes.ts); and, only for a packing
// whose bytes do not determine its values, that the reader's decoder yields exactly the values the
// quantizer produced (for every ggml type, equal bytes already prove that).

import { WhittleError } from '../../errors'
import { readGguf } from '../../formats/gguf'
import { ggmlTypeByName } from '../../formats/ggml-types'
import { readTensorF32 } from '../../formats/read'
import { closeFile } from '../../io/ranged-file'
import { decodeTensorF32 } from '../../pool/decode-tensor'
import type { WorkerPool } from '../../pool/worker-pool'
import { f32Checksum } from './encode'
import { checkGgufLoadability } from './loadability'
import { hashSpansOnDisk } from './tensor-hashes'
import type { CrcThreads } from './crc-threads'

export interface IntendedTensor {
  name: string
  type: string
  dims: number[]
  /** tensor-hashes.ts hashBytes of the bytes written (the bytes themselves are not kept: the export streams). */
  hash: number
  /**
   * f32Checksum of the values the bytes should decode to, for a packing whose bytes alone do not prove its
   * values (tensor-hashes.ts tensorCheck); null when the hash comparison is the whole check.
   */
  checksum: number | null
}

/**
 * With a pool, tensors decode on the WASM kernels (the same bits as the TS reference readers, faster), and
 * the re-read bytes are hashed on `crcThreads` (started for the call when not given).
 * `shownAs` names the file in errors when `file` is the temporary it is written under.
 */
export async function verifyGgufExport(
  file: string,
  intended: IntendedTensor[],
  pool?: WorkerPool,
  shownAs: string = file,
  crcThreads?: CrcThreads,
): Promise<void> {
  const fail = (problem: string): WhittleError => new WhittleError('format', shownAs, `verification failed: ${problem}`)
  try {
    const g = await readGguf(file)
    await checkGgufLoadability(g, shownAs)
    if (g.infos.length !== intended.length)
      throw fail(`${g.infos.length} tensors read back, ${intended.length} written`)
    for (const [i, want] of intended.entries()) {
      const info = g.infos[i]
      if (info.name !== want.name) throw fail(`tensor ${i} is "${info.name}", expected "${want.name}"`)
      if (info.ggmlType !== ggmlTypeByName(want.type)?.id)
        throw fail(`tensor "${want.name}" has ggml type ${info.ggmlType}, expected ${want.type}`)
      if (info.dims.join(',') !== want.dims.join(','))
        throw fail(`tensor "${want.name}" has dims [${info.dims.join(', ')}], expected [${want.dims.join(', ')}]`)
    }
    // The writer lays tensors out in order, so the whole data section is one sequential read.
    for (let i = 1; i < g.tensors.length; i++) {
      const before = g.tensors[i - 1]
      if (g.tensors[i].offset < before.offset + before.byteLength)
        throw fail(`tensor "${g.infos[i].name}" overlaps or precedes the tensor before it`)
    }
    // Around the page cache where the OS allows it: the bytes come from the disk, not from the cache.
    // With a pool, CRC threads hash in its kernel memory while this thread waits on the reads.
    const hashes = await hashSpansOnDisk(file, g.tensors, undefined, { direct: true, pool, crcThreads })
    for (const [i, want] of intended.entries()) {
      const entry = g.tensors[i]
      if (hashes[i] !== want.hash) throw fail(`tensor "${want.name}" bytes differ from what was written`)
      if (
        want.checksum !== null &&
        f32Checksum(pool ? await decodeTensorF32(pool, entry) : await readTensorF32(entry)) !== want.checksum
      ) {
        throw fail(`tensor "${want.name}" decodes differently from the quantizer's own dequantization`)
      }
    }
  } finally {
    closeFile(file)
  }
}
