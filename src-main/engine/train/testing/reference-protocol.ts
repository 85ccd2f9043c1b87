// The reference training protocol's inputs (../shared/reference/training/README.md), for tests and
// benchmarks: the Wanda-50% student and the non-overlapping 256-token windows of the calibration ids.

import { openModelFiles } from '../../formats/open'
import { readTensorF32 } from '../../formats/read'
import type { LoadedModel } from '../../model/loaded-model'
import { withReplacements, type ModelView } from '../../model/model-view'
import { shared } from '../../testing/shared-data'

/** The student of the reference runs: wanda_50's Linears replacing stories260K's. */
export async function wandaStudent(base: LoadedModel): Promise<ModelView> {
  const view = withReplacements(base)
  const files = await openModelFiles(shared('reference/compressed/wanda_50.safetensors'))
  for (const t of files.tensors) view.replace(t.name, await readTensorF32(t))
  return view
}

/** Window k of the reference protocol: ids[256k, 256k + 256). */
export function referenceWindow(ids: Int32Array, k: number, seqlen = 256): Int32Array {
  const n = Math.floor(ids.length / seqlen)
  const w = ((k % n) + n) % n
  return ids.subarray(w * seqlen, (w + 1) * seqlen)
}
