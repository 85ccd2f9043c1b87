#!/usr/bin/env node
// `npx whittle …`: runs the TypeScript CLI through tsx, so the CLI works right after `npm install`
// without a separate build step.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./main.ts')
process.exitCode = await main(process.argv.slice(2))
