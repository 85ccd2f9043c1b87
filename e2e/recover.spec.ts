// Recovery in a real browser: Wanda 50% on the demo model, then a short knowledge distillation of that
// student from the original in the Recover tab (3 steps, perplexity measured at each), with the live
// loss chart, the eval perplexity chart and the recovered model's perplexity and export button.

import { test, expect } from '@playwright/test'
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { useServedApp } from './web-server'
import { expectCompressResult } from './compress-result'
import { scaled } from '../src-main/engine/testing/time-factor'

const exportDir = mkdtempSync(path.join(os.tmpdir(), 'whittle-e2e-recover-'))

const served = useServedApp({ WHITTLE_EXPORT_DIR: exportDir })

/** The number in a cell such as "22.37". */
async function numberIn(page: import('@playwright/test').Page, testId: string): Promise<number> {
  return Number(((await page.getByTestId(testId).textContent()) ?? '').trim())
}

test('distill a Wanda-50% student for 3 steps and see its loss and perplexity', async ({ page }) => {
  test.setTimeout(scaled(600_000))
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toContainText('llama')

  // The student: Wanda 50%, measured on a few eval windows.
  await page.getByTestId('tab-prune').click()
  await page.getByTestId('prune-method-wanda').check()
  await page.getByTestId('prune-sparsity-input').fill('50')
  await page.getByTestId('compress-max-windows').fill('8')
  await page.getByTestId('compress-run').click()
  await expectCompressResult(page, scaled(480_000))

  // Recover it: KD, 3 steps of 2 windows, perplexity after every step.
  await page.getByTestId('tab-recover').click()
  await expect(page.getByTestId('recover-student')).toContainText('wanda')
  await page.getByTestId('recover-kind-kd').check()
  const param = (name: string) => page.getByTestId(`recover-param-${name}`).locator('input, select').first()
  await param('steps').fill('3')
  await param('batch_size').fill('2')
  await param('lr').fill('0.001')
  await param('eval_every').fill('1')
  await page.getByTestId('recover-run').click()

  await expect(page.getByTestId('recover-loss-chart').locator('canvas')).toBeVisible({ timeout: scaled(480_000) })
  await expect(page.getByTestId('recover-result')).toBeVisible({ timeout: scaled(480_000) })
  await expect(page.getByTestId('recover-step')).toContainText('step 3/3')
  await expect(page.getByTestId('recover-ppl-chart').locator('canvas')).toBeVisible()
  await expect(page.getByTestId('recover-best')).toContainText(/best \d+\.\d+ at step [123]/)
  const teacher = await numberIn(page, 'recover-ppl-teacher')
  const before = await numberIn(page, 'recover-ppl-student-before-training')
  const after = await numberIn(page, 'recover-ppl-student-after-training')
  // The pruned student starts worse than the teacher; three steps of distillation help it.
  expect(before).toBeGreaterThan(teacher)
  expect(after).toBeLessThan(before)
  await expect(page.getByTestId('recover-export')).toBeEnabled()
  await page.screenshot({ path: 'test-results/screenshots/20-recover-kd.png', fullPage: true })
  expect(errors).toEqual([])
})
