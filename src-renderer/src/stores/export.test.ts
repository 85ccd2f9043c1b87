import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { ExportResult } from '@contract/api'
import { provideApi } from '../bridge'
import { FakeEngine, settle } from '../testing/fake-engine'
import { exportSpec, useExportStore } from './export'

let engine: FakeEngine

beforeEach(() => {
  engine = new FakeEngine()
  provideApi(engine)
  setActivePinia(createPinia())
})

const written = (out: string): ExportResult => ({
  out,
  format: 'gptq',
  files: [
    { name: 'model.safetensors', bytes: 1000 },
    { name: 'whittle-report.html', bytes: 10 },
  ],
  verified: '35 packed Linears decode bit-exactly',
  reportPath: `${out}/whittle-report.html`,
  seconds: 1.5,
})

describe('export store', () => {
  it('sends only the options of the chosen format', () => {
    const form = {
      format: 'gguf' as const,
      ggufType: 'Q8_0',
      gptqFormat: 'gptq_v2' as const,
      dtype: 'F16' as const,
      out: ' /x/y ',
    }
    expect(exportSpec('m', form)).toEqual({ modelId: 'm', format: 'gguf', out: '/x/y', ggufType: 'Q8_0' })
    expect(exportSpec('m', { ...form, format: 'gptq' })).toEqual({
      modelId: 'm',
      format: 'gptq',
      out: '/x/y',
      gptqFormat: 'gptq_v2',
    })
    expect(exportSpec('m', { ...form, format: 'safetensors' })).toEqual({
      modelId: 'm',
      format: 'safetensors',
      out: '/x/y',
      dtype: 'F16',
    })
  })

  it('suggests a destination per format until the user edits it, runs the job, and reads the report', async () => {
    const ex = useExportStore()
    await ex.openFor('cm1', 'a (compressed)', true)
    expect(ex.form.out).toBe('/exports/cm1-gguf-Q4_K_M')
    ex.setFormat('gptq')
    // Until the engine answers, the GGUF path is gone and Export waits.
    expect(ex.form.out).toBe('')
    expect(ex.suggesting).toBe(true)
    await settle()
    expect(ex.suggesting).toBe(false)
    expect(ex.form.out).toBe('/exports/cm1-gptq')
    ex.editOut('/mine/here')
    ex.setFormat('compressed-tensors')
    await settle()
    expect(ex.form.out).toBe('/mine/here')

    ex.setFormat('gptq')
    engine.onStart = (id) =>
      queueMicrotask(() =>
        engine.emit({ id, kind: 'export', state: 'done', progress: 1, message: 'done', result: written('/mine/here') }),
      )
    engine.reports.set('/mine/here/whittle-report.html', '<html>report</html>')
    await ex.run()
    expect(engine.started[0].spec).toEqual({
      kind: 'export',
      modelId: 'cm1',
      format: 'gptq',
      out: '/mine/here',
      gptqFormat: 'gptq',
    })
    expect(ex.result?.verified).toMatch(/bit-exactly/)
    // After the export the field still says where the files went.
    await settle()
    expect(ex.form.out).toBe('/mine/here')
    await ex.showReport()
    expect(ex.reportHtml).toBe('<html>report</html>')
  })

  it("shows the engine's reason when the export fails, and offers only conversions for an uncompressed model", async () => {
    const ex = useExportStore()
    ex.form.format = 'gptq'
    await ex.openFor('m1', 'a', false)
    expect(ex.form.format).toBe('gguf')
    engine.onStart = (id) =>
      queueMicrotask(() =>
        engine.emit({
          id,
          kind: 'export',
          state: 'error',
          progress: 0,
          message: 'failed',
          error: '/x: already exists; choose a new folder (exports never overwrite)',
        }),
      )
    await ex.run()
    expect(ex.failure).toMatch(/already exists/)
    expect(ex.result).toBeNull()
    expect(ex.running).toBe(false)
  })
})
