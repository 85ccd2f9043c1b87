// The desktop app's trust decisions, as plain functions (no Electron import), so they are unit-tested
// without an Electron binary: which frame may call the engine, which links may leave the app, and which
// app:// URLs name a file of the bundled renderer.

import path from 'node:path'

/** The renderer is served from app://bundle/ (a privileged, secure custom scheme; never file://). */
export const APP_SCHEME = 'app'
export const APP_HOST = 'bundle'
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`
export const APP_ENTRY = `${APP_ORIGIN}/index.html`

/**
 * External URLs the app may hand to the operating system (shell.openExternal), exactly as written.
 * The renderer links nowhere outside the app today, so the list is empty and every window.open or
 * target=_blank is denied; a link added to the UI must be added here too.
 */
export const EXTERNAL_LINKS: readonly string[] = []

function parse(url: unknown): URL | null {
  if (typeof url !== 'string' || url.length > 8192) return null
  try {
    return new URL(url)
  } catch {
    return null
  }
}

/** True for a URL of the app's own origin (app://bundle, no credentials, no port). */
export function isAppUrl(url: unknown): boolean {
  const u = parse(url)
  return (
    u !== null &&
    u.protocol === `${APP_SCHEME}:` &&
    u.hostname === APP_HOST &&
    u.port === '' &&
    u.username === '' &&
    u.password === ''
  )
}

/** The part of an IPC event's senderFrame the check needs. */
export interface SenderFrameLike {
  url: string
  parent: unknown
}

/**
 * Only the app's own top-level page may call the engine: a missing frame (navigated away or destroyed),
 * a sub-frame, or any other origin (file://, http://, a data: URL) is refused.
 */
export function isTrustedSender(frame: SenderFrameLike | null | undefined): boolean {
  if (!frame) return false
  if (frame.parent !== null && frame.parent !== undefined) return false
  return isAppUrl(frame.url)
}

/** True only for an https URL that is exactly one of the allowed links. */
export function isAllowedExternalUrl(url: unknown, allowed: readonly string[] = EXTERNAL_LINKS): boolean {
  const u = parse(url)
  if (!u || u.protocol !== 'https:' || u.username !== '' || u.password !== '') return false
  return allowed.some((a) => parse(a)?.href === u.href)
}

/**
 * The file of the renderer bundle an app:// URL names, or null when the URL is not the app's origin,
 * is malformed, or points outside `rendererDir` (traversal through `..`, encoded or not, or a backslash).
 */
export function bundleFileFor(url: unknown, rendererDir: string): string | null {
  if (!isAppUrl(url)) return null
  const u = parse(url)!
  let rel: string
  try {
    rel = decodeURIComponent(u.pathname)
  } catch {
    return null
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\\]/.test(rel)) return null
  if (rel === '/' || rel === '') rel = '/index.html'
  const root = path.resolve(rendererDir)
  const file = path.resolve(root, `.${rel}`)
  const inside = path.relative(root, file)
  if (inside === '' || inside === '..' || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside)) return null
  return file
}
