// Test time limits for a loaded 2-core machine. Limits are generous to begin with and multiplied by
// WHITTLE_TEST_TIME_FACTOR (default 1), so a slower or busier machine raises one number, not every test.

const raw = Number(process.env.WHITTLE_TEST_TIME_FACTOR ?? '1')
export const TIME_FACTOR = Number.isFinite(raw) && raw > 0 ? raw : 1

/** A time limit in milliseconds, scaled by WHITTLE_TEST_TIME_FACTOR. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_FACTOR)
}
