// Quantized checkpoints show how they are stored, beside the decoded values: a GPTQ export's packed
// Linears (bits, group size, the qweight / scales / qzeros parts, code and scale histograms), and a GGUF
// block-quantized tensor (type, block size, block-scale histograms).

import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { test, expect } from '@playwright/test'
import { repoRoot, useServedApp } from './web-server'

const golden = path.resolve(repoRoot, '../shared/reference/gguf-golden/small-llama-Q4_K.gguf')
const served = useServedApp()

test('a Q4_K tensor shows its block type, block size and block-scale histograms', async ({ page }) => {
  test.skip(!existsSync(golden), `${golden} is absent (reference data lives in ../shared)`)
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toBeVisible()
  await page.getByTestId('open-path-input').fill(golden)
  await page.getByTestId('open-button').click()
  await expect(page.getByTestId('model-summary')).toContainText('small-llama-Q4_K')

  await page.getByTestId('tensor-filter').fill('blk.0.attn_q')
  await page.locator('[data-testid="tensor-row"][data-name="blk.0.attn_q.weight"]').click()
  const panel = page.getByTestId('storage-panel')
  await expect(panel).toContainText('Q4_K · 256 per block · 144 B')
  await expect(panel).toContainText('block size')
  await expect(page.getByTestId('histogram-chart')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('storage-chart-block-d')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('storage-chart-block-dmin')).toHaveAttribute('data-ready', 'true')
  await page.screenshot({ path: 'test-results/screenshots/storage-gguf.png', fullPage: true })
  expect(errors).toEqual([])
})

test('a GPTQ export names its packing and shows each packed Linear’s parts and code counts', async ({ page }) => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'whittle-e2e-gptq-')), 'gptq')
  const recipe = path.join(repoRoot, 'resources/recipes/rtn-4bit-g32.yaml')
  const demo = path.join(repoRoot, 'resources/demo/stories260K')
  const cli = path.join(repoRoot, 'src-main/cli/bin.mjs')
  await promisify(execFile)(process.execPath, [
    cli,
    'compress',
    demo,
    '--recipe',
    recipe,
    '--out',
    out,
    '--format',
    'gptq',
  ])
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(served().url)
  await expect(page.getByTestId('model-summary')).toBeVisible()
  await page.getByTestId('open-path-input').fill(out)
  await page.getByTestId('open-button').click()
  await expect(page.getByTestId('model-summary')).toContainText('GPTQ 4-bit g32')

  await page.getByTestId('tensor-filter').fill('layers.0.self_attn.q_proj')
  await page.locator('[data-testid="tensor-row"][data-name="model.layers.0.self_attn.q_proj.weight"]').click()
  const parts = page.getByTestId('storage-parts')
  await expect(parts).toContainText('model.layers.0.self_attn.q_proj.qweight')
  await expect(parts).toContainText('model.layers.0.self_attn.q_proj.scales')
  await expect(parts).toContainText('model.layers.0.self_attn.q_proj.qzeros')
  await expect(page.getByTestId('storage-panel')).toContainText('act-order')
  await expect(page.getByTestId('storage-chart-codes')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('storage-chart-scales')).toHaveAttribute('data-ready', 'true')
  await expect(page.getByTestId('histogram-chart')).toHaveAttribute('data-ready', 'true')
  await page.screenshot({ path: 'test-results/screenshots/storage-gptq.png', fullPage: true })
  expect(errors).toEqual([])
})
