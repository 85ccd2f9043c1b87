// Running the model from the UI: perplexity on the bundled text, activation outliers, head importance
// (with a head's weight slices) and layer importance, all computed by the real engine on stories260K.

import { test, expect } from '@playwright/test'
import { useServedApp } from './web-server'
import { scaled } from '../src-main/engine/testing/time-factor'

const served = useServedApp()

test('perplexity, activations, heads and layers on the demo model', async ({ page }) => {
  test.setTimeout(scaled(600_000))
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toContainText('llama')

  await page.getByTestId('tab-run').click()
  await page.getByTestId('ppl-max-windows').fill('24')
  await page.getByTestId('ppl-run').click()
  const result = page.getByTestId('ppl-result')
  await expect(result).toContainText(/\d+\.\d{4}/, { timeout: scaled(240_000) })
  const ppl = Number(/(\d+\.\d{4})/.exec((await result.textContent()) ?? '')![1])
  // The demo model on its own domain: single-digit perplexity (5.14 on the whole text).
  expect(ppl).toBeGreaterThan(3)
  expect(ppl).toBeLessThan(9)
  await page.screenshot({ path: 'test-results/screenshots/04-perplexity.png', fullPage: true })

  await page.getByTestId('tab-activations').click()
  await page.getByTestId('activations-run').click()
  await expect(page.getByTestId('activations-chart')).toHaveAttribute('data-ready', 'true', {
    timeout: scaled(240_000),
  })
  await expect(page.getByTestId('persistence-heatmap')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('smoothing-chart')).toHaveAttribute('data-ready', 'true')
  await page.screenshot({ path: 'test-results/screenshots/05-activations.png', fullPage: true })

  await page.getByTestId('tab-heads').click()
  await page.getByTestId('heads-run').click()
  await expect(page.getByTestId('heads-heatmap-ablation')).toHaveAttribute('data-ready', 'true', {
    timeout: scaled(240_000),
  })
  await expect(page.getByTestId('heads-heatmap-proxy')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('heads-correlation')).toContainText(/-?\d\.\d+/)
  await page.getByTestId('heads-table').locator('tbody tr').first().click()
  await expect(page.getByTestId('head-weights')).toBeVisible()
  await page.screenshot({ path: 'test-results/screenshots/06-heads.png', fullPage: true })

  await page.getByTestId('tab-layers').click()
  await page.getByTestId('layers-run').click()
  await expect(page.getByTestId('layers-angular-chart')).toHaveAttribute('data-ready', 'true', {
    timeout: scaled(240_000),
  })
  await expect(page.getByTestId('layers-skip-chart')).toHaveAttribute('data-ready', 'true')
  await page.screenshot({ path: 'test-results/screenshots/07-layers.png', fullPage: true })
  expect(errors).toEqual([])
})
