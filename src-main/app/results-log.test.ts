// The results log behind the Compare view: points survive a restart (a new log over the same file),
// belong to one model, and only this session's points keep an exportable model id.

import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import type { ResultPoint } from '../contract/api'
import { ResultsLog } from './results-log'

function point(id: string, modelPath: string, compressedModelId: string | null): ResultPoint {
  return {
    id,
    at: '2026-12-02T10:00:00.000Z',
    modelPath,
    modelName: 'm',
    recipe: { steps: [{ method: 'rtn' }] },
    label: 'rtn',
    bitsPerWeight: 4.5,
    bytesBefore: 10,
    bytesAfter: 5,
    bytesDenseAfter: 10,
    sparsity: 0,
    paramsAfter: 3,
    pplBefore: 5,
    pplAfter: 6,
    evalText: null,
    seqlen: 256,
    maxEvalWindows: null,
    tensors: [],
    compressedModelId,
  }
}

describe('results log', () => {
  it('keeps points across restarts, per model; only the live session keeps exportable ids', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'whittle-results-')), 'results.json')
    const session = new ResultsLog(file)
    await session.add(point('a', '/m1', 'cm-a'))
    await session.add(point('b', '/m2', 'cm-b'))
    expect((await session.list('/m1')).map((p) => [p.id, p.compressedModelId])).toEqual([['a', 'cm-a']])
    session.forget('cm-a')
    expect((await session.list('/m1'))[0].compressedModelId).toBeNull()
    const restarted = new ResultsLog(file)
    expect((await restarted.list('/m2')).map((p) => [p.id, p.compressedModelId])).toEqual([['b', null]])
  })

  it('reads a corrupt file as empty and writes over it', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'whittle-results-')), 'results.json')
    writeFileSync(file, '{not json')
    const log = new ResultsLog(file)
    expect(await log.list('/m1')).toEqual([])
    await log.add(point('a', '/m1', null))
    expect((await log.list('/m1')).map((p) => p.id)).toEqual(['a'])
  })
})
