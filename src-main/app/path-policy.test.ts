// The desktop app's path policy, through the service as the IPC handlers drive it: a restricted service
// refuses every path argument the user did not choose, in every call that carries one, before anything
// runs; chosen paths, bundled texts and the export folder pass; web mode (unrestricted) is unchanged.
// And suggestExportPath: only known formats and types, always inside the export folder.

import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { JobUpdate, ModelSummary } from '../contract/api'
import { GGUF_EXPORT_TYPES } from '../engine/export/gguf/type-policy'
import { EXPORT_FORMATS } from '../engine/export/export-model'
import { bundledText } from './paths'
import { WhittleService } from './whittle-service'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-path-policy-'))
const exportDir = path.join(tmp, 'exports')
const outside = path.join(tmp, 'outside')
mkdirSync(exportDir)
mkdirSync(outside)
const secret = path.join(outside, 'secret.txt')
writeFileSync(secret, 'Once upon a time there was a secret.\n'.repeat(50))
// A link inside the export folder that leads out of it does not carry the folder's grant.
symlinkSync(outside, path.join(exportDir, 'escape'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

type Reply = Awaited<ReturnType<WhittleService['handle']>>

function restricted(): WhittleService {
  return new WhittleService({
    mode: 'electron',
    version: 'test',
    demoPath: demo,
    startupPath: demo,
    configDir: path.join(tmp, 'config-r'),
    exportDir,
    restrictPaths: true,
  })
}

async function result<T>(r: Promise<Reply>): Promise<T> {
  const reply = await r
  if (!reply.ok) throw new Error(reply.error.message)
  return reply.result as T
}

function finished(service: WhittleService, id: string): Promise<JobUpdate> {
  return new Promise((resolve) => {
    const stop = service.onJob((u) => {
      if (u.id === id && ['done', 'error', 'cancelled'].includes(u.state)) {
        stop()
        resolve(u)
      }
    })
  })
}

/**
 * Whether the path policy let a call through, without running anything: the call names a model that is
 * not open, so a call the policy accepts fails afterwards with 'not-found', one it refuses with 'validation'.
 */
async function verdict(
  service: WhittleService,
  call: 'startJob' | 'openModel',
  params: Record<string, unknown>,
): Promise<'accepted' | 'refused'> {
  const r = await service.handle(call, call === 'startJob' ? { modelId: 'no-such-model', ...params } : params)
  expect(r.ok).toBe(false)
  if (r.ok) throw new Error('unreachable')
  expect(r.error.code, r.error.message).not.toBe('internal')
  return r.error.code === 'validation' ? 'refused' : 'accepted'
}

describe('path policy (desktop app)', () => {
  const service = restricted()
  let modelId = ''

  it('refuses every path argument the user did not choose, in every call that carries one', async () => {
    modelId = (await result<ModelSummary>(service.handle('openModel', { path: demo }))).id // the CLI path
    const recipe = { steps: [{ method: 'rtn', params: { bits: 4, group_size: 32 } }] }
    const cases: [string, unknown][] = [
      ['openModel', { path: secret }],
      ['openModel', { path: outside }],
      ['readReport', { path: secret }],
      ['startJob', { kind: 'perplexity', modelId, text: secret }],
      ['startJob', { kind: 'compress', modelId, recipe, evalText: secret }],
      ['startJob', { kind: 'compress', modelId, recipe: { ...recipe, calibration: { text: secret } } }],
      [
        'startJob',
        {
          kind: 'compress',
          modelId,
          recipe: { ...recipe, calibration: { text: path.relative(process.cwd(), secret) } },
        },
      ],
      ['startJob', { kind: 'activations', modelId, calibration: { text: secret } }],
      ['startJob', { kind: 'heads', modelId, calibration: { text: secret } }],
      ['startJob', { kind: 'layers', modelId, calibration: { text: secret } }],
      ['startJob', { kind: 'export', modelId, format: 'safetensors', out: path.join(outside, 'x') }],
      ['startJob', { kind: 'export', modelId, format: 'safetensors', out: path.join(exportDir, '..', 'outside', 'y') }],
      ['startJob', { kind: 'export', modelId, format: 'safetensors', out: path.join(exportDir, 'escape', 'z') }],
      ['startJob', { kind: 'export', modelId, format: 'safetensors', out: exportDir }],
      [
        'startJob',
        { kind: 'export', modelId, format: 'gguf', out: path.join(os.homedir(), '.config', 'autostart', 'x') },
      ],
      ['startJob', { kind: 'export', modelId, format: 'safetensors', out: bundledText('eval') ?? '/x' }], // readable is not writable
    ]
    const started: JobUpdate[] = []
    const stop = service.onJob((u) => started.push(u))
    // Control: the same requests to an unrestricted service pass validation (and fail only for the unknown
    // model), so what refused them above is the path policy alone.
    const web = new WhittleService({
      mode: 'web',
      version: 'test',
      demoPath: demo,
      configDir: path.join(tmp, 'config-c'),
      exportDir,
    })
    for (const [call, params] of cases) {
      const r = await service.handle(call as 'startJob', params)
      expect(r.ok, `${call} ${JSON.stringify(params)}`).toBe(false)
      if (!r.ok) expect(r.error.code, r.error.message).toBe('validation')
      if (call === 'startJob') {
        const control = await web.handle('startJob', { ...(params as object), modelId: 'no-such-model' })
        expect(control.ok || control.error.code, `${JSON.stringify(params)} without the policy`).toBe('not-found')
      }
    }
    stop()
    expect(started).toEqual([]) // refused before any job was queued
    // Nothing was written where the refused exports pointed.
    expect(existsSync(path.join(outside, 'x'))).toBe(false)
    expect(existsSync(path.join(outside, 'y'))).toBe(false)
    expect(existsSync(path.join(outside, 'z'))).toBe(false)
  })

  it('accepts the bundled texts, chosen paths (a drop), and exports inside the export folder', async () => {
    expect(await verdict(service, 'startJob', { kind: 'perplexity', text: bundledText('eval')! })).toBe('accepted')
    expect(await verdict(service, 'startJob', { kind: 'heads', calibration: { text: bundledText('calib')! } })).toBe(
      'accepted',
    )
    // A drop seen by the preload approves exactly that path, for every call that reads one...
    expect(await verdict(service, 'startJob', { kind: 'perplexity', text: secret })).toBe('refused')
    service.approvePath(secret)
    expect(await verdict(service, 'startJob', { kind: 'perplexity', text: secret })).toBe('accepted')
    expect(await verdict(service, 'startJob', { kind: 'activations', calibration: { text: secret } })).toBe('accepted')
    expect(
      await verdict(service, 'startJob', {
        kind: 'compress',
        recipe: { steps: [{ method: 'rtn' }], calibration: { text: secret } },
        evalText: secret,
      }),
    ).toBe('accepted')
    expect(await verdict(service, 'openModel', { path: secret })).toBe('accepted') // accepted, then refused as no model
    // ...but nothing next to it, and it grants no writing.
    expect(await verdict(service, 'startJob', { kind: 'perplexity', text: path.join(outside, 'other.txt') })).toBe(
      'refused',
    )
    expect(
      await verdict(service, 'startJob', { kind: 'export', format: 'safetensors', out: path.join(secret, 'x') }),
    ).toBe('refused')
    expect(
      await verdict(service, 'startJob', {
        kind: 'export',
        format: 'safetensors',
        out: path.join(exportDir, 'new', 'deeper'),
      }),
    ).toBe('accepted')

    const out = await result<string>(service.handle('suggestExportPath', { modelId, format: 'gguf', ggufType: 'F32' }))
    expect(path.dirname(out)).toBe(exportDir)
    const id = await result<string>(
      service.handle('startJob', { kind: 'export', modelId, format: 'gguf', ggufType: 'F32', out }),
    )
    const done = await finished(service, id)
    expect(done.state, done.error).toBe('done')
    expect(existsSync(path.join(out, 'stories260K-F32.gguf'))).toBe(true)
    // A model the user opened before (recents) may be opened again by a new session.
    const again = new WhittleService({
      mode: 'electron',
      version: 'test',
      demoPath: null,
      configDir: path.join(tmp, 'config-r'),
      exportDir,
      restrictPaths: true,
    })
    expect((await again.handle('openModel', { path: demo })).ok).toBe(true)
    expect((await again.handle('openModel', { path: outside })).ok).toBe(false)
  })

  it('web mode (no restriction) keeps accepting typed paths', async () => {
    const web = new WhittleService({
      mode: 'web',
      version: 'test',
      demoPath: demo,
      configDir: path.join(tmp, 'config-w'),
      exportDir,
    })
    expect(await verdict(web, 'startJob', { kind: 'perplexity', text: secret })).toBe('accepted')
    expect(
      await verdict(web, 'startJob', { kind: 'export', format: 'safetensors', out: path.join(outside, 'x') }),
    ).toBe('accepted')
    expect((await web.handle('openModel', { path: demo })).ok).toBe(true)
  })
})

describe('suggestExportPath', () => {
  const exportDir = path.join(tmp, 'suggested')
  const service = new WhittleService({
    mode: 'web',
    version: 'test',
    demoPath: demo,
    configDir: path.join(tmp, 'config-s'),
    exportDir,
  })

  it('refuses ggufType and format values that are not known, whether or not the path they name exists', async () => {
    const { id: modelId } = await result<ModelSummary>(service.handle('openDemo', {}))
    const hostile = [
      '../../../x',
      `../../../${path.relative(exportDir, secret)}`,
      '/etc/passwd',
      '..',
      'Q8_0/../../x',
      'constructor',
      '__proto__',
      'q8_0',
      'Q8_0\0',
      '',
    ]
    const messages = new Set<string>()
    for (const ggufType of hostile) {
      const r = await service.handle('suggestExportPath', { modelId, format: 'gguf', ggufType })
      expect(r.ok, ggufType).toBe(false)
      if (!r.ok) {
        expect(r.error.code).toBe('validation')
        messages.add(r.error.message)
      }
    }
    // One message for all of them: the answer says nothing about which of those paths exist.
    expect(messages.size).toBe(1)
    for (const format of ['../x', 'gguf/../../x', 'zip', 'constructor']) {
      expect((await service.handle('suggestExportPath', { modelId, format })).ok, format).toBe(false)
    }
    expect((await service.handle('suggestExportPath', { modelId, format: 'safetensors', ggufType: 'Q8_0' })).ok).toBe(
      false,
    )
    expect(existsSync(path.join(tmp, 'x'))).toBe(false)
  })

  it('always answers with a new entry of the export folder, for every known format and type', async () => {
    const { id: modelId } = await result<ModelSummary>(service.handle('openDemo', {}))
    const requests = [
      ...EXPORT_FORMATS.filter((f) => f !== 'gguf').map((format) => ({ format })),
      ...GGUF_EXPORT_TYPES.map((ggufType) => ({ format: 'gguf', ggufType })),
    ]
    for (const req of requests) {
      const p = await result<string>(service.handle('suggestExportPath', { modelId, ...req }))
      expect(path.dirname(p), JSON.stringify(req)).toBe(exportDir)
      expect(path.basename(p)).toBe(
        ['stories260K', req.format, 'ggufType' in req ? req.ggufType : undefined].filter(Boolean).join('-'),
      )
      expect(existsSync(p)).toBe(false)
    }
    // A dangling symlink under the suggested name counts as taken (lstat), and its target is not followed.
    mkdirSync(exportDir, { recursive: true })
    symlinkSync(path.join(outside, 'nowhere'), path.join(exportDir, 'stories260K-gguf-Q4_0'))
    expect(
      await result<string>(service.handle('suggestExportPath', { modelId, format: 'gguf', ggufType: 'Q4_0' })),
    ).toBe(path.join(exportDir, 'stories260K-gguf-Q4_0-2'))
  })
})
