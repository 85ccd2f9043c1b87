// Stats + histogram + per-channel throughput on a 4096×4096 tensor, F32 and BF16:
// the TS reference twins on one thread against the WASM SIMD kernels inline (1 thread) and on 2 workers.
// Every variant reads the tensor from the same file (warm page cache), so the numbers compare end to end.

import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { openModelFiles } from '../../src-main/engine/formats/open'
import { readTensorF32 } from '../../src-main/engine/formats/read'
import { writeSafetensors } from '../../src-main/engine/formats/safetensors-writer'
import { streamTensor } from '../../src-main/engine/inspect/tensor-stream'
import { WorkerPool } from '../../src-main/engine/pool/worker-pool'
import { colAbsmaxSumsq, rowAbsmaxSumsq } from '../../kernels/reference/channels'
import { histogram } from '../../kernels/reference/histogram'
import { moments } from '../../kernels/reference/stats'
import { MODELS_DIR } from '../models'
import { bestOf, emit, gbps, peakRss } from '../rows'

const N = 4096
const BINS = 256

async function tensorFile(dtype: 'F32' | 'BF16'): Promise<string> {
  const file = path.join(MODELS_DIR, `matrix-4096-${dtype.toLowerCase()}.safetensors`)
  mkdirSync(MODELS_DIR, { recursive: true })
  const data = new Float32Array(N * N)
  let s = 12345
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    data[i] = (s / 2 ** 32 - 0.5) * 0.04 * (i % N === 7 ? 20 : 1) // one loud input channel
  }
  const bytes = dtype === 'F32' ? new Uint8Array(data.buffer) : bf16Bytes(data)
  await writeSafetensors(file, [{ name: 'w', dtype, shape: [N, N], data: bytes }])
  return file
}

function bf16Bytes(f: Float32Array): Uint8Array {
  const u = new Uint32Array(f.buffer)
  const out = new Uint16Array(f.length)
  for (let i = 0; i < f.length; i++) out[i] = u[i] >>> 16
  return new Uint8Array(out.buffer)
}

for (const dtype of ['F32', 'BF16'] as const) {
  const file = await tensorFile(dtype)
  const entry = (await openModelFiles(file)).tensors[0]
  const label = `stats+histogram+channels, 4096×4096 ${dtype}`
  const tsSeconds = await bestOf(3, async () => {
    const x = await readTensorF32(entry)
    moments(x)
    histogram(x, -1, 1, BINS, new Uint32Array(BINS + 2))
    rowAbsmaxSumsq(x, N, N, new Float32Array(N), new Float64Array(N))
    colAbsmaxSumsq(x, N, N, new Float32Array(N), new Float64Array(N))
  })
  emit({
    case: label,
    variant: 'TS scalar (reference twins)',
    measure: 'throughput',
    value: gbps(entry.byteLength, tsSeconds),
    ratio: '1.0x',
  })
  for (const threads of [0, 2]) {
    const pool = await WorkerPool.create({ threads })
    const s = await bestOf(5, async () => {
      await streamTensor(pool, entry, { moments: true, channels: true, histogram: { lo: -1, hi: 1, bins: BINS } })
    })
    await pool.close()
    emit({
      case: label,
      variant: threads === 0 ? 'WASM SIMD, 1 thread' : `WASM SIMD, ${threads} workers`,
      measure: 'throughput',
      value: gbps(entry.byteLength, s),
      ratio: `${(tsSeconds / s).toFixed(1)}x`,
      peakRss: peakRss(),
    })
  }
}
