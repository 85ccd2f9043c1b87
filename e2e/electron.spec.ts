// The desktop app itself, driven through Playwright's _electron. Electron's binary cannot be downloaded
// on offline machines (CI here), so this spec skips there and says why.

import { test, expect, _electron as electron } from '@playwright/test'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { repoRoot } from './web-server'

function electronBinary(): string | null {
  try {
    const dir = path.join(repoRoot, 'node_modules', 'electron')
    const rel = readFileSync(path.join(dir, 'path.txt'), 'utf8').trim()
    const bin = path.join(dir, 'dist', rel)
    return existsSync(bin) ? bin : null
  } catch {
    return null
  }
}

const binary = electronBinary()

test.describe('desktop app', () => {
  test.skip(
    !binary,
    'Electron binary not installed (offline install: node_modules/electron/path.txt is missing); web-mode specs cover the same renderer and engine',
  )
  test.skip(
    !process.env.DISPLAY && process.platform === 'linux',
    'no X display (run under xvfb-run to include the desktop app)',
  )

  test('opens the demo model in a sandboxed window', async () => {
    const app = await electron.launch({ executablePath: binary!, args: [repoRoot, '--no-sandbox'], cwd: repoRoot })
    const win = await app.firstWindow()
    await expect(win.getByTestId('model-summary')).toContainText('llama')
    // Isolation as the page sees it: no Node globals, only the contract's functions.
    const seen = await win.evaluate(() => {
      const g = globalThis as unknown as Record<string, unknown>
      return {
        require: typeof g.require,
        process: typeof g.process,
        api: Object.keys((g.whittle ?? {}) as object).sort(),
      }
    })
    expect(seen.require).toBe('undefined')
    expect(seen.process).toBe('undefined')
    expect(seen.api).toContain('openModel')
    expect(seen.api).not.toContain('invoke')
    await win.screenshot({ path: 'test-results/screenshots/electron.png' })
    await app.close()
  })
})
