// The Structure view in a real browser: Bonsai removes 20% of the demo model's parameters (heads and
// MLP neurons), the bars show what each block kept, a sweep over the reduction puts Bonsai's curve of
// perplexity against parameters on the chart, and the picked point exports as a smaller safetensors
// model that re-opens with the widths the bars showed.

import { test, expect } from '@playwright/test'
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { useServedApp } from './web-server'
import { expectCompressResult } from './compress-result'
import { scaled } from '../src-main/engine/testing/time-factor'

const exportDir = mkdtempSync(path.join(os.tmpdir(), 'whittle-e2e-structure-'))

const served = useServedApp({ WHITTLE_EXPORT_DIR: exportDir })

test('Bonsai in the Structure view: kept widths, a sweep, and the picked point exported', async ({ page }) => {
  test.setTimeout(scaled(600_000))
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toContainText('llama')
  await page.getByTestId('tab-structure').click()
  await page.getByTestId('structure-method-bonsai').check()
  // A small budget of sub-models keeps the browser test short; the method's own tests use the defaults.
  await page.getByTestId('structure-param-samples').locator('input').fill('8')
  await page.getByTestId('structure-param-rounds').locator('input').fill('1')
  await page.getByTestId('compress-max-windows').fill('16')
  await page.getByTestId('compress-run').click()
  await expectCompressResult(page, scaled(480_000))

  // The Structure view starts its own recipe: the structural step alone, not the Compress tab's default preset.
  await expect(page.getByTestId('structure-result')).toContainText('bonsai')
  await expect(page.getByTestId('structure-result')).not.toContainText('rtn')
  const kept = page.getByTestId('structure-kept')
  await expect(kept).toContainText(/parameters [\d.]+\s*\w* → [\d.]+/)
  // The bars' element is the chart itself (EChart's root takes the test id).
  await expect(page.getByTestId('structure-bars')).toHaveAttribute('data-ready', 'true', { timeout: scaled(60_000) })
  await page.screenshot({ path: 'test-results/screenshots/16-structure.png', fullPage: true })

  await page.getByTestId('structure-sweep-param').selectOption('reduction')
  await page.getByTestId('structure-sweep-values').fill('0.1, 0.3')
  await page.getByTestId('structure-sweep-run').click()
  await expect(page.getByTestId('structure-sweep-note')).toContainText('done: 2 runs', { timeout: scaled(480_000) })
  await expect(page.getByTestId('structure-sweep-chart')).toHaveAttribute('data-ready', 'true')
  const rows = page.getByTestId('structure-points').locator('tbody tr')
  await expect(rows).toHaveCount(3)
  // Smaller models first: the 30% point has the fewest parameters and a higher perplexity than the 10% one.
  const ppl = async (i: number): Promise<number> => Number(await rows.nth(i).locator('td').nth(3).textContent())
  expect(await ppl(0)).toBeGreaterThan(await ppl(2))

  await rows.nth(0).click()
  await expect(page.getByTestId('structure-picked')).toContainText('bonsai')
  await page.getByTestId('structure-export').click()
  await page.getByTestId('export-format').selectOption('safetensors')
  await page.getByTestId('export-run').click()
  await expect(page.getByTestId('export-verified')).toContainText('re-read and equal', { timeout: scaled(240_000) })
  // Read only now: the path is suggested asynchronously after the format changes, and after the export the
  // field shows where the files went. An empty path would "open" nothing and leave the demo model showing.
  const out = await page.getByTestId('export-out').inputValue()
  expect(path.isAbsolute(out)).toBe(true)
  await page.getByTestId('export-dialog').getByRole('button', { name: 'Close' }).click()

  await page.getByTestId('open-path-input').fill(out)
  await page.getByTestId('open-button').click()
  await page.getByTestId('tab-overview').click()
  await expect(page.getByTestId('model-summary')).toContainText(path.basename(out))
  expect(errors).toEqual([])
})
