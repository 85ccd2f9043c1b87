// `node .ci/apply-fuses.mjs <binary>` on a stand-in Electron binary: the fuse wire Electron embeds is a
// sentinel string, a version byte, a length byte, then one ASCII '0'/'1' per fuse. The script must set
// the Whittle fuses, leave unknown fuses and every other byte alone, and fail clearly on a non-Electron file.

import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const script = path.resolve(__dirname, '../../.ci/apply-fuses.mjs')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-fuses-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** Electron's fuse sentinel (electron/build/fuses), followed by wire version 1. */
const SENTINEL = Buffer.from('dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX', 'ascii')
// Wire order (Electron's fuses.json5): RunAsNode, EnableCookieEncryption, EnableNodeOptionsEnvironmentVariable,
// EnableNodeCliInspectArguments, EnableEmbeddedAsarIntegrityValidation, OnlyLoadAppFromAsar,
// LoadBrowserProcessSpecificV8Snapshot, GrantFileProtocolExtraPrivileges, then a ninth this script does not set.
const ELECTRON_DEFAULTS = '101100011'
const WHITTLE = '01001100'

function fakeBinary(): { file: string; before: Buffer; wireAt: number } {
  const before = Buffer.concat([
    randomBytes(4096),
    SENTINEL,
    Buffer.from([1, ELECTRON_DEFAULTS.length]),
    Buffer.from(ELECTRON_DEFAULTS, 'ascii'),
    randomBytes(4096),
  ])
  const file = path.join(tmp, `electron-${randomBytes(4).toString('hex')}`)
  writeFileSync(file, before)
  return { file, before, wireAt: 4096 + SENTINEL.length + 2 }
}

describe('apply-fuses', () => {
  it('flips the Whittle fuses and nothing else', () => {
    const { file, before, wireAt } = fakeBinary()
    const run = spawnSync(process.execPath, [script, file], { encoding: 'utf8' })
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain('RunAsNode: off')
    expect(run.stdout).toContain('OnlyLoadAppFromAsar: on')
    const after = readFileSync(file)
    expect(after.length).toBe(before.length)
    expect(after.subarray(wireAt, wireAt + 9).toString('ascii')).toBe(WHITTLE + ELECTRON_DEFAULTS[8])
    // Every byte outside the eight fuses is as it was.
    expect(
      Buffer.concat([after.subarray(0, wireAt), after.subarray(wireAt + 8)]).equals(
        Buffer.concat([before.subarray(0, wireAt), before.subarray(wireAt + 8)]),
      ),
    ).toBe(true)
  })

  it('refuses a file without the fuse wire, and a missing argument, without touching anything', () => {
    const file = path.join(tmp, 'not-electron')
    const bytes = randomBytes(10_000)
    writeFileSync(file, bytes)
    const run = spawnSync(process.execPath, [script, file], { encoding: 'utf8' })
    expect(run.status).toBe(1)
    expect(run.stderr).toContain(file)
    expect(readFileSync(file).equals(bytes)).toBe(true)
    expect(spawnSync(process.execPath, [script], { encoding: 'utf8' }).status).toBe(2)
  })
})
