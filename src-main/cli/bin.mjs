#!/usr/bin/env node
// `npx whittle …`: runs the prebuilt bundle out/cli/main.mjs (`npm run build`, see build-cli.mjs) while it
// is fresh, else the TypeScript sources through tsx, so the CLI still works right after `npm install`
// without a build step. The bundle saves most of the start-up (tsx compiling ~300 files costs more than a
// small eval), but it must never run older code than the sources: a developer who edits a file and runs
// `whittle` gets the edit. So "fresh" means no source file the bundle was built from changed after the
// build (bundle-freshness.mjs); a newly added file is caught too, since some listed file changed to import it.
// WHITTLE_CLI=source forces the sources; WHITTLE_CLI=bundle forces the bundle and fails when it is missing
// or stale (tests of the bundle use it).
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { cliBundleDir, cliBundleProblem } from './bundle-freshness.mjs'

// `whittle inspect … | head` closes the pipe early; that is the reader's choice, not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})

const mode = process.env.WHITTLE_CLI
const problem = mode === 'source' ? 'WHITTLE_CLI=source' : cliBundleProblem()
if (problem !== null && mode === 'bundle') {
  process.stderr.write(`whittle: WHITTLE_CLI=bundle, but the CLI bundle cannot be used: ${problem}\n`)
  process.exit(1)
}
let main
if (problem === null) {
  ;({ main } = await import(pathToFileURL(path.join(cliBundleDir(), 'main.mjs')).href))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main } = await import('./main.ts'))
}
process.exitCode = await main(process.argv.slice(2))
