// `npm start`: the desktop app needs Electron's binary, which `npm install` fetches only when online.
// Without it electron-vite ends in an "Electron uninstall" stack trace; say instead, in plain words,
// what is missing, how to get it, and what works right now.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const require = createRequire(import.meta.url)

/** The Electron executable's path, or null when the package or its downloaded binary is missing. */
function electronBinary() {
  let dir
  try {
    dir = path.dirname(require.resolve('electron/package.json'))
  } catch {
    return null
  }
  const pathFile = path.join(dir, 'path.txt')
  if (!existsSync(pathFile)) return null
  const exe = path.join(dir, 'dist', readFileSync(pathFile, 'utf8').trim())
  return existsSync(exe) ? exe : null
}

if (!electronBinary()) {
  console.error(
    "whittle: the desktop window needs Electron's binary, which could not be fetched when the packages were installed.\n" +
      '  get it once you are online:  node node_modules/electron/install.js   (or run npm install again)\n' +
      '  works now, in your browser:  npm run serve',
  )
  process.exit(1)
}

const run = (cmd) => spawnSync(cmd, { shell: true, stdio: 'inherit' }).status ?? 1
const built = run('npm run build')
if (built !== 0) process.exit(built)
process.exit(run('npx electron-vite preview'))
