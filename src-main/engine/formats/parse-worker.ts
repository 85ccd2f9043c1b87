// The parser worker's entry (see parse-worker-host.ts): runs one job per message and answers with the
// value or a serialized error. Jobs are independent; a tokenizer is kept between them because an eval and
// a compression of one model encode two texts with the same tokenizer.json.

import { parentPort } from 'node:worker_threads'
import { ggufColumnBuffers, ggufToColumns, readGgufHeader } from './gguf'
import { serializeError, type ParseJob, type ParseReply } from './parse-worker-host'
import { columnBuffers, headerToColumns, parseSafetensorsHeader } from './safetensors'
import { closeFile } from '../io/ranged-file'

async function handle(job: ParseJob): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
  switch (job.kind) {
    case 'safetensors-header': {
      const columns = headerToColumns(parseSafetensorsHeader(job.path, job.header, job.dataLength))
      return { value: columns, transfer: columnBuffers(columns) }
    }
    case 'gguf':
      try {
        const columns = ggufToColumns(await readGgufHeader(job.path))
        return { value: columns, transfer: ggufColumnBuffers(columns) }
      } finally {
        closeFile(job.path) // the main thread owns handle caching; keep none open here
      }
    case 'tokenize': {
      // Loaded on first use: the tokenizer library is the bulk of this worker's start-up, and header jobs never need it.
      const { encodeTextInline } = await import('./tokenizer')
      const ids = await encodeTextInline(job.folder, job.text)
      return { value: ids, transfer: [ids.buffer as ArrayBuffer] }
    }
  }
}

const port = parentPort
if (!port) throw new Error('parse-worker.ts must run as a worker thread')
port.on('message', (msg: { id: number; job: ParseJob }) => {
  handle(msg.job).then(
    ({ value, transfer }) => port.postMessage({ id: msg.id, ok: true, value } satisfies ParseReply, transfer),
    (e: unknown) => port.postMessage({ id: msg.id, ok: false, error: serializeError(e) } satisfies ParseReply),
  )
})
