#!/usr/bin/env node
// `npx whittle …`: runs the TypeScript CLI through tsx, so the CLI works right after `npm install`
// without a separate build step.
import { register } from 'tsx/esm/api'

register()
// `whittle inspect … | head` closes the pipe early; that is the reader's choice, not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})
const { main } = await import('./main.ts')
process.exitCode = await main(process.argv.slice(2))
