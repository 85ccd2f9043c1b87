// `whittle serve`: web mode. Prints the URL with its token and serves until interrupted.

import { existsSync } from 'node:fs'
import path from 'node:path'
import { appVersion, demoModelPath, rendererDir } from '../app/paths'
import { WhittleService } from '../app/whittle-service'
import { WhittleError } from '../engine/errors'
import { closeSharedPool } from '../engine/pool/worker-pool'
import { isLoopback, startWebServer } from '../server/web-server'
import { intFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { SERVE_HEADER } from './command-headers'

export const SERVE: CommandSpec = {
  ...SERVE_HEADER,
  options: [
    { name: 'model', value: 'PATH', help: 'open this model first (default: the bundled demo)' },
    { name: 'port', value: 'N', help: 'port to listen on (default: any free port)' },
    { name: 'host', value: 'ADDR', help: 'address to bind (default 127.0.0.1)' },
    { name: 'allow-remote', help: 'required with a --host beyond this machine' },
  ],
}

export async function serveCommand(argv: string[]): Promise<number> {
  const args = parseCommand(argv, SERVE)
  if (args.positionals.length > 0)
    throw new UsageError(`serve takes no positional arguments (got ${args.positionals[0]}); use --model PATH`)
  const port = intFlag(args, 'port', 0, 0, 65535)
  const host = typeof args.flags.host === 'string' ? args.flags.host : '127.0.0.1'
  if (!isLoopback(host) && !args.flags['allow-remote']) {
    throw new UsageError(`--host ${host} listens beyond this machine; add --allow-remote if you mean it`)
  }
  const staticDir = rendererDir()
  if (!existsSync(path.join(staticDir, 'index.html'))) {
    throw new WhittleError(
      'not-found',
      staticDir,
      'the renderer is not built; run `npm run serve` (it builds first) or `npm run build`',
    )
  }
  const model = typeof args.flags.model === 'string' ? path.resolve(args.flags.model) : null
  const service = new WhittleService({
    mode: 'web',
    version: appVersion(),
    demoPath: demoModelPath(),
    startupPath: model,
  })
  const server = await startWebServer({ service, staticDir, port, host })
  if (!isLoopback(host)) {
    process.stderr.write(
      `whittle: WARNING: listening on ${host}: anyone who can reach it and has the token can read files this user can read.\n`,
    )
  }
  process.stdout.write(`Whittle web mode: ${server.url}\n`)
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  // Give in-flight replies a moment, but never let a stuck connection keep the process alive.
  await Promise.race([server.close(), new Promise((r) => setTimeout(r, 2000))])
  await closeSharedPool()
  process.exit(0)
}
