// The app:// protocol handler's body: answers a request for the bundled renderer with the file it names,
// and nothing else. No Electron import (it uses the web-standard Response), so it is tested in plain Node.

import { readFile, realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import { bundleFileFor } from './security'

/** The renderer's Content Security Policy; the page also carries it in a meta tag. */
export const RENDERER_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

const TYPES: ReadonlyMap<string, string> = new Map([
  ['.html', 'text/html; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.mjs', 'text/javascript; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
  ['.png', 'image/png'],
  ['.ico', 'image/x-icon'],
  ['.json', 'application/json'],
  ['.woff2', 'font/woff2'],
  ['.wasm', 'application/wasm'],
])

/** The renderer is a few MB at most; a bigger file here is not one of ours. */
const MAX_BUNDLE_FILE = 64 * 1024 * 1024

function refuse(status: number): Response {
  return new Response(status === 404 ? 'Not found' : 'Bad request', {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  })
}

/**
 * The response for an app:// request: a file inside `rendererDir` (after resolving symlinks too), or
 * 404. Only GET and HEAD; never throws.
 */
export async function serveBundleRequest(url: string, method: string, rendererDir: string): Promise<Response> {
  try {
    if (method !== 'GET' && method !== 'HEAD') return refuse(400)
    const file = bundleFileFor(url, rendererDir)
    if (!file) return refuse(404)
    const [realRoot, realFile] = await Promise.all([realpath(rendererDir), realpath(file).catch(() => null)])
    if (!realFile) return refuse(404)
    const rel = path.relative(realRoot, realFile)
    if (rel === '' || rel.startsWith(`..${path.sep}`) || rel === '..' || path.isAbsolute(rel)) return refuse(404)
    const st = await stat(realFile)
    if (!st.isFile() || st.size > MAX_BUNDLE_FILE) return refuse(404)
    const headers: Record<string, string> = {
      'content-type': TYPES.get(path.extname(realFile).toLowerCase()) ?? 'application/octet-stream',
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    }
    if (realFile.endsWith('.html')) headers['content-security-policy'] = RENDERER_CSP
    return new Response(method === 'HEAD' ? null : await readFile(realFile), { status: 200, headers })
  } catch {
    return refuse(404)
  }
}
