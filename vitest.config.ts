import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'
import { scaled } from './src-main/engine/testing/time-factor.ts'

export default defineConfig({
  resolve: { alias: { '@contract': fileURLToPath(new URL('./src-main/contract', import.meta.url)) } },
  test: {
    include: ['src-main/**/*.test.ts', 'src-renderer/**/*.test.ts', 'kernels/test/**/*.test.ts'],
    // Generous limits: the reference-perplexity tests take ~90 s alone and several times that on a loaded
    // 2-core machine; WHITTLE_TEST_TIME_FACTOR scales them further.
    testTimeout: scaled(600_000),
    hookTimeout: scaled(300_000),
    pool: 'forks',
    // Recents and the results log of every engine and CLI the tests start go to a scratch folder,
    // never the user's ~/.config/whittle.
    env: { WHITTLE_CONFIG_DIR: path.join(os.tmpdir(), `whittle-test-config-${process.pid}`) },
  },
})
