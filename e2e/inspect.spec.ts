// The first vertical slice in a real browser: the demo model opens on first start, a tensor opens with
// its stats, histogram and channel chart, and the whole-model scan fills the overview heatmap.

import { test, expect } from '@playwright/test'
import { useServedApp } from './web-server'

const served = useServedApp()

test('demo model opens, a tensor shows its histogram and outlier channels', async ({ page }) => {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  const summary = page.getByTestId('model-summary')
  await expect(summary).toContainText('llama')
  await expect(summary).toContainText('260')
  await page.screenshot({ path: 'test-results/screenshots/01-model.png', fullPage: true })

  await page.getByTestId('tensor-filter').fill('layers.1.mlp.down')
  const row = page.locator('[data-testid="tensor-row"][data-name="model.layers.1.mlp.down_proj.weight"]')
  await row.click()
  await expect(page.getByTestId('stats-table')).toContainText('kurtosis')
  await expect(page.getByTestId('histogram-chart')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('channel-chart')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('heatmap-chart')).toHaveAttribute('data-ready', 'true')
  await page.screenshot({ path: 'test-results/screenshots/02-tensor.png', fullPage: true })

  await page.getByTestId('histogram-log-toggle').click()
  await expect(page.getByTestId('histogram-chart')).toHaveAttribute('data-ready', 'true')

  await page.getByTestId('tab-overview').click()
  await page.getByTestId('scan-button').click()
  await expect(page.getByTestId('overview-heatmap')).toHaveAttribute('data-ready', 'true')
  await page.screenshot({ path: 'test-results/screenshots/03-overview.png', fullPage: true })
  expect(errors).toEqual([])
})

test('a bad path shows a readable error, not a blank screen', async ({ page }) => {
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toBeVisible()
  await page.getByTestId('open-path-input').fill('/nonexistent/model.safetensors')
  await page.getByTestId('open-button').click()
  await expect(page.getByTestId('error-banner')).toContainText('/nonexistent/model.safetensors')
  await expect(page.getByTestId('model-summary')).toBeVisible()
})
