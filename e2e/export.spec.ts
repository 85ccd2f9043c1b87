// Export in a real browser: compress the demo model with RTN 4-bit, export it as GPTQ and as GGUF into a
// temporary folder, check the files on disk and the read-back verdict, and open the report.

import { test, expect } from '@playwright/test'
import { existsSync, mkdtempSync, readdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { useServedApp } from './web-server'
import { expectCompressResult } from './compress-result'
import { scaled } from '../src-main/engine/testing/time-factor'

const exportDir = mkdtempSync(path.join(os.tmpdir(), 'whittle-e2e-exports-'))

const served = useServedApp({ WHITTLE_EXPORT_DIR: exportDir })

test('compress the demo, export GPTQ and GGUF, open the report', async ({ page }) => {
  test.setTimeout(scaled(600_000))
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toContainText('llama')
  await page.getByTestId('tab-compress').click()
  const preset = page.getByTestId('compress-preset')
  await preset.selectOption(
    (await preset.locator('option', { hasText: 'RTN 4-bit g32' }).first().getAttribute('value'))!,
  )
  await page.getByTestId('compress-max-windows').fill('32')
  await page.getByTestId('compress-run').click()
  await expectCompressResult(page, scaled(480_000))

  await page.getByTestId('export-open').click()
  const dialog = page.getByTestId('export-dialog')
  await expect(dialog).toBeVisible()
  await page.getByTestId('export-format').selectOption('gptq')
  await expect(page.getByTestId('export-out')).toHaveValue(path.join(exportDir, 'stories260K-gptq'))
  await page.screenshot({ path: 'test-results/screenshots/11-export-dialog.png' })
  await page.getByTestId('export-run').click()
  await expect(page.getByTestId('export-verified')).toContainText('35 packed Linears decode bit-exactly', {
    timeout: scaled(240_000),
  })
  await expect(page.getByTestId('export-files')).toContainText('quantize_config.json')
  const gptqDir = path.join(exportDir, 'stories260K-gptq')
  for (const f of [
    'model.safetensors',
    'config.json',
    'quantize_config.json',
    'whittle-recipe.yaml',
    'whittle-report.html',
    'whittle-report.json',
  ]) {
    expect(existsSync(path.join(gptqDir, f)), f).toBe(true)
  }
  await page.screenshot({ path: 'test-results/screenshots/12-export-done.png' })
  await page.getByTestId('export-open-report').click()
  const report = page.frameLocator('[data-testid="export-report-frame"]')
  await expect(report.locator('h1')).toContainText('Whittle compression report')
  await expect(report.locator('body')).toContainText('perplexity after')
  await expect(report.locator('svg').first()).toBeVisible()
  await page.screenshot({ path: 'test-results/screenshots/13-report.png' })

  await page.getByTestId('export-format').selectOption('gguf')
  await page.getByTestId('export-gguf-type').selectOption('Q8_0')
  await expect(page.getByTestId('export-out')).toHaveValue(path.join(exportDir, 'stories260K-gguf-Q8_0'))
  await page.getByTestId('export-run').click()
  await expect(page.getByTestId('export-verified')).toContainText('tensors re-read', { timeout: scaled(240_000) })
  expect(readdirSync(path.join(exportDir, 'stories260K-gguf-Q8_0'))).toContain('stories260K-Q8_0.gguf')
  expect(errors).toEqual([])
})
