import { defineConfig } from '@playwright/test'
import { scaled } from './src-main/engine/testing/time-factor.ts'

// E2E drives the real renderer against the real engine in web mode, in Debian's Chromium.
// The browser is never downloaded by Playwright (no `npx playwright install`).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-quic',
  '--disable-sync',
]

export default defineConfig({
  testDir: 'e2e',
  timeout: scaled(600_000),
  expect: { timeout: scaled(60_000) },
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/playwright',
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: process.env.WHITTLE_CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS },
    viewport: { width: 1400, height: 900 },
    trace: 'off',
  },
})
