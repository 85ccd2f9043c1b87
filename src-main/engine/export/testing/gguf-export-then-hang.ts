// Child process for the kill-mid-export tests of single-file (GGUF) exports: starts a real exportGguf of
// the model in argv[2] to argv[3] and, when the export reports the stage named in argv[4] ('encoding':
// the file is half written; 'verifying': it is complete but not yet checked), says so on stdout and
// blocks there until the test kills it, as a process killed at that moment would be.

import { writeSync } from 'node:fs'
import { exportGguf } from '../gguf/export-gguf'
import { loadModel } from '../../model/loaded-model'
import { WorkerPool } from '../../pool/worker-pool'

const [, , modelPath, dest, stage] = process.argv
const pool = await WorkerPool.create({ threads: 0 })
const model = await loadModel(modelPath)
let encoded = 0
await exportGguf(pool, model, dest, {
  type: 'F32',
  onProgress: (_fraction, message) => {
    // The second tensor: the header and the first tensor have been handed to the writer.
    const here = stage === 'encoding' ? message.startsWith('encoding') && ++encoded === 2 : message === stage
    if (!here) return
    writeSync(1, `hanging at ${message}\n`)
    // Progress callbacks are synchronous: block the whole process, as if it froze right here.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
  },
})
writeSync(1, 'finished without hanging\n')
