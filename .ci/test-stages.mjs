// `npm test`: run every stage even when an earlier one fails, so one red stage never hides the others,
// then print each stage's result and exit non-zero if any failed.
// WHITTLE_TEST_TIME_FACTOR (default 1) scales every test timeout for loaded machines; it is passed on.
import { spawnSync } from 'node:child_process'

const STAGES = [
  ['build', 'npm run build'],
  ['typecheck', 'npm run typecheck'],
  ['format', 'npm run format:check'],
  ['unit', 'npm run test:unit'],
  ['e2e', 'npm run test:e2e'],
]
const only = process.argv.slice(2)

const results = []
for (const [name, command] of STAGES) {
  if (only.length && !only.includes(name)) continue
  const started = Date.now()
  console.log(`\n=== stage ${name}: ${command}`)
  const r = spawnSync(command, { shell: true, stdio: 'inherit', env: process.env })
  const seconds = ((Date.now() - started) / 1000).toFixed(0)
  const status = r.status === 0 ? 'passed' : `FAILED (exit ${r.status ?? r.signal})`
  results.push({ name, ok: r.status === 0, line: `${name.padEnd(10)} ${status} in ${seconds} s` })
}

console.log('\n=== stages')
for (const r of results) console.log(r.line)
const failed = results.filter((r) => !r.ok).length
console.log(`stages: ${results.length - failed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
