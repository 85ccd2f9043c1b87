// Waiting for a compress run in the Compress or Prune view: its before/after perplexity card, or the
// failure line. A failed job fails the test at once with the engine's message instead of waiting out
// the timeout for a card that will never come.

import { expect, type Page } from '@playwright/test'

export async function expectCompressResult(page: Page, timeout: number): Promise<void> {
  const card = page.getByTestId('compress-ppl').filter({ hasText: /\d+\.\d+.*\d+\.\d+/ })
  const failure = page.getByTestId('compress-failure')
  await expect(card.or(failure)).toBeVisible({ timeout })
  if (await failure.isVisible()) throw new Error(`the compress job failed: ${await failure.textContent()}`)
}
