// Flips Electron's fuses (compile-time feature switches baked into the binary) in a packaged app's Electron
// executable, to the settings the desktop app is built for. There is no packager yet: run it on the
// packaged binary after copying the app in, before signing (it rewrites the file):
//
//   node .ci/apply-fuses.mjs <path-to-electron-binary-or-.app>
//
// A packaging step can also import { applyWhittleFuses } and call it (e.g. from an electron-builder
// afterPack hook). Do not run it on node_modules/electron's own binary: `npm start` runs the app from
// the source folder, which OnlyLoadAppFromAsar would refuse.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)
const { flipFuses, getCurrentFuseWire, FuseVersion, FuseV1Options } = require('@electron/fuses')

/** The settings, by fuse name; why each is set as it is. */
export const WHITTLE_FUSES = {
  // ELECTRON_RUN_AS_NODE would turn the signed app into a general Node interpreter.
  RunAsNode: false,
  // Cookies and other session data encrypted at rest with the OS keychain.
  EnableCookieEncryption: true,
  // NODE_OPTIONS and --inspect would let anyone who can start the app inject code into the main process.
  EnableNodeOptionsEnvironmentVariable: false,
  EnableNodeCliInspectArguments: false,
  // Load the app only from app.asar, and check that archive against the integrity hash the packager embeds
  // (macOS and Windows). The packager must unpack the engine's worker and WASM files (asarUnpack).
  EnableEmbeddedAsarIntegrityValidation: true,
  OnlyLoadAppFromAsar: true,
  // The app ships no custom V8 snapshot.
  LoadBrowserProcessSpecificV8Snapshot: false,
  // The renderer is served over app://, so file:// needs none of its legacy extra privileges.
  GrantFileProtocolExtraPrivileges: false,
}

function fuseConfig() {
  const config = { version: FuseVersion.V1 }
  for (const [name, value] of Object.entries(WHITTLE_FUSES)) {
    if (!(name in FuseV1Options)) throw new Error(`@electron/fuses does not know the fuse ${name}`)
    config[FuseV1Options[name]] = value
  }
  return config
}

/** Flips the fuses in place and returns the wire as read back from the file, by fuse name ('0'/'1'). */
export async function applyWhittleFuses(electronBinary) {
  await flipFuses(electronBinary, fuseConfig())
  const wire = await getCurrentFuseWire(electronBinary)
  const states = {}
  for (const name of Object.keys(WHITTLE_FUSES)) states[name] = String.fromCharCode(wire[FuseV1Options[name]])
  return states
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const target = process.argv[2]
  if (!target) {
    console.error('usage: node .ci/apply-fuses.mjs <path-to-electron-binary-or-.app>')
    process.exit(2)
  }
  try {
    const states = await applyWhittleFuses(target)
    for (const [name, state] of Object.entries(states))
      console.log(`${name}: ${state === '1' ? 'on' : state === '0' ? 'off' : `state ${state}`}`)
  } catch (e) {
    console.error(`apply-fuses: ${target}: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  }
}
