// listMethods through the service's one entry (validation, dispatch) as the preload and the web server
// call it: the catalogue arrives whole and survives the JSON the WebSocket carries.

import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { methodCatalogue } from '../engine/compress/methods'
import { WhittleService } from './whittle-service'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-methods-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('listMethods', () => {
  const root = path.resolve(__dirname, '../..')
  const service = new WhittleService({
    mode: 'web',
    version: 'test',
    demoPath: path.join(root, 'resources/demo/stories260K'),
    configDir: tmp,
    exportDir: path.join(tmp, 'exports'),
  })

  it('answers the engine catalogue, every method with its kind, summary and params', async () => {
    const r = await service.handle('listMethods', undefined)
    expect(r.ok).toBe(true)
    const wire = JSON.parse(JSON.stringify(r.ok ? r.result : null))
    expect(wire).toEqual(JSON.parse(JSON.stringify(methodCatalogue())))
    const gptq = wire.find((m: { name: string }) => m.name === 'gptq')
    expect(gptq).toMatchObject({ kind: 'quantize', needsCalibration: true })
    expect(gptq.params.find((p: { name: string }) => p.name === 'bits')).toMatchObject({
      type: 'int',
      default: 4,
      min: 2,
      max: 8,
    })
  })

  it('takes no arguments', async () => {
    expect(await service.handle('listMethods', {})).toMatchObject({ ok: true })
    expect(await service.handle('listMethods', { kind: 'prune' })).toMatchObject({
      ok: false,
      error: { code: 'validation', message: 'listMethods: unexpected field "kind"' },
    })
  })
})
