// The request target (the path and query of a request line), parsed without `new URL()`.
// `new URL(raw, base)` throws on targets such as `//[` or `http://:99999/` (it reads them as a host), and
// a stray `%` makes decodeURIComponent throw. The server serves only origin-form targets ("/path?query"),
// so anything else is refused here, as a value, before any other check runs.

export interface RequestTarget {
  /** The decoded path, starting with a single '/'. */
  path: string
  /** The query string's parameters (URLSearchParams never throws on odd input). */
  query: URLSearchParams
}

/** Longer targets than this are refused (Node caps the whole header block at 16 KiB anyway). */
export const MAX_TARGET_LENGTH = 8192

/** The parsed target, or null when it is not a well-formed origin-form target. */
export function parseRequestTarget(raw: unknown): RequestTarget | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_TARGET_LENGTH) return null
  // Origin form only: absolute form (`http://host/...`), authority form and `*` are not for this server,
  // and a leading `//` is what a URL parser would take for a host.
  if (raw[0] !== '/' || raw[1] === '/') return null
  const hash = raw.indexOf('#')
  const target = hash >= 0 ? raw.slice(0, hash) : raw
  const q = target.indexOf('?')
  const rawPath = q >= 0 ? target.slice(0, q) : target
  const path = decodePath(rawPath)
  if (path === null) return null
  return { path, query: new URLSearchParams(q >= 0 ? target.slice(q + 1) : '') }
}

/** Percent-decodes a path; null when an escape is malformed or the result holds a NUL or control byte. */
function decodePath(rawPath: string): string | null {
  let decoded: string
  try {
    decoded = decodeURIComponent(rawPath)
  } catch {
    return null // URIError: `%` without two hex digits, or bytes that are not UTF-8 (`%c0%ae`, `%E0%A4%A`)
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return null
  return decoded
}
