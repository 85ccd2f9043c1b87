// Our own stand-in for electron's install script, which package.json's allowScripts keeps from running.
// It builds the WASM kernels, then fetches Electron's binary when the network allows, and says so in one line when not.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const root = path.dirname(path.dirname(new URL(import.meta.url).pathname))
const build = spawnSync(process.execPath, [path.join(root, 'kernels/build.mjs')], { stdio: 'inherit' })
if (build.status !== 0) process.exit(build.status ?? 1)

const require = createRequire(import.meta.url)
let electronDir
try {
  electronDir = path.dirname(require.resolve('electron/package.json'))
} catch {
  process.exit(0) // production install without devDependencies: the CLI and web mode need no Electron
}
if (process.env.ELECTRON_SKIP_BINARY_DOWNLOAD || existsSync(path.join(electronDir, 'path.txt'))) process.exit(0)
const fetched = spawnSync(process.execPath, [path.join(electronDir, 'install.js')], {
  stdio: ['ignore', 'ignore', 'pipe'],
  timeout: 300_000,
})
if (fetched.status === 0) console.log('whittle: Electron binary installed.')
else
  console.log(
    'whittle: Electron binary not downloaded (offline?); `npm start` needs it (fetch it later with `node node_modules/electron/install.js`), web mode (`npm run serve`) and the CLI do not.',
  )
