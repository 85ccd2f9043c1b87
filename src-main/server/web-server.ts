// Web mode: the same renderer and the same engine, the engine running here in Node and the renderer in
// a browser tab. The server is a local tool, not a website, so it defends itself like one:
// - it binds to 127.0.0.1 unless told otherwise (and warns when told);
// - every HTTP and WebSocket request must carry the random token (query `token`, or the cookie set
//   from it on the first page load);
// - Host must name this server (stops DNS rebinding) and Origin, when sent, must be this server
//   (stops a foreign page from driving the engine through the user's browser);
// - the token cookie is named after the port, so other local servers the browser visits never get it;
// - no request, header, frame or argument can take the process down: malformed targets get 400 before
//   any other check, bad frames close the socket, and a last-resort guard wraps every entry point.

import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { pipeline } from 'node:stream'
import path from 'node:path'
import { WebSocketServer } from 'ws'
import { WS_PATH } from '../contract/wire'
import type { WhittleService } from '../app/whittle-service'
import { lastResort, logToStderr, type ServerErrorLog } from './last-resort'
import { parseRequestTarget, type RequestTarget } from './request-target'
import { MAX_WS_MESSAGE, serveSocket } from './ws-session'

export { MAX_WS_MESSAGE } from './ws-session'

export interface WebServerOptions {
  service: WhittleService
  staticDir: string
  port?: number
  host?: string
  /** Fixed token (tests); random otherwise. */
  token?: string
  /** Where faults caught by the last-resort guard are reported (default: one line on stderr). */
  onError?: ServerErrorLog
}

export interface RunningWebServer {
  url: string
  port: number
  token: string
  /** The token cookie's name: one per port, so another local web app on 127.0.0.1 never receives it. */
  cookieName: string
  close(): Promise<void>
}

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self' ws://127.0.0.1:* ws://localhost:*",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ')
const TYPES: ReadonlyMap<string, string> = new Map([
  ['.html', 'text/html; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
  ['.png', 'image/png'],
  ['.ico', 'image/x-icon'],
  ['.json', 'application/json'],
  ['.woff2', 'font/woff2'],
])

export function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1'
}

/** Cookies are scoped by host, not port: the port in the name keeps servers on other ports from seeing it. */
export function tokenCookieName(port: number): string {
  return `whittle_token_${port}`
}

export async function startWebServer(options: WebServerOptions): Promise<RunningWebServer> {
  const token = options.token ?? randomBytes(24).toString('hex')
  const bindHost = options.host ?? '127.0.0.1'
  const staticDir = path.resolve(options.staticDir)
  const service = options.service
  const log = options.onError ?? logToStderr
  let port = options.port ?? 0

  const allowedHosts = (): Set<string> => {
    const names = new Set(['127.0.0.1', 'localhost', '[::1]'])
    if (!isLoopback(bindHost)) names.add(bindHost.includes(':') ? `[${bindHost}]` : bindHost)
    return new Set([...names].map((h) => `${h}:${port}`))
  }

  const tokenOk = (req: http.IncomingMessage, target: RequestTarget): boolean => {
    const given = target.query.get('token') ?? readCookie(req.headers.cookie, tokenCookieName(port))
    if (!given) return false
    const a = Buffer.from(given),
      b = Buffer.from(token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  /** Null when acceptable, else the reason for refusing. */
  const refuse = (req: http.IncomingMessage, target: RequestTarget): string | null => {
    const host = req.headers.host
    if (typeof host !== 'string' || !allowedHosts().has(host.toLowerCase())) return 'unexpected Host header'
    const origin = req.headers.origin
    if (origin !== undefined && !allowedHosts().has(origin.replace(/^https?:\/\//, '').toLowerCase()))
      return 'foreign Origin'
    if (!tokenOk(req, target)) return 'missing or wrong token'
    return null
  }

  const serveHttp = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const target = parseRequestTarget(req.url)
    if (!target) {
      plain(res, 400, 'Bad Request: malformed request target')
      return
    }
    const why = refuse(req, target)
    if (why) {
      plain(res, 403, `Forbidden: ${why}`)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    const rel = target.path === '/' ? 'index.html' : target.path.replace(/^\/+/, '')
    const file = path.resolve(staticDir, rel)
    if (!file.startsWith(staticDir + path.sep)) {
      plain(res, 404, 'Not found')
      return
    }
    const st = await stat(file).catch(() => null)
    if (!st || !st.isFile()) {
      plain(res, 404, 'Not found')
      return
    }
    const headers: Record<string, string> = {
      'content-type': TYPES.get(path.extname(file)) ?? 'application/octet-stream',
      'content-length': String(st.size),
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    }
    if (file.endsWith('.html')) {
      headers['content-security-policy'] = CSP
      headers['set-cookie'] = `${tokenCookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`
    }
    res.writeHead(200, headers)
    if (req.method === 'HEAD') res.end()
    // pipeline destroys the response if the file vanishes or fails mid-read (a bare pipe would throw).
    else pipeline(createReadStream(file), res, () => undefined)
  }

  const server = http.createServer((req, res) => {
    lastResort(
      'HTTP request',
      log,
      () => serveHttp(req, res),
      () => {
        if (!res.headersSent) plain(res, 400, 'Bad Request')
        else res.destroy()
      },
    )
  })
  // Requests Node's parser cannot read (bad bytes, oversized headers) never reach the handler.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  })

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE })
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node hands the raw socket over without an error listener; a reset must not be an uncaught error.
    socket.on('error', () => socket.destroy())
    lastResort(
      'WebSocket upgrade',
      log,
      () => {
        const target = parseRequestTarget(req.url)
        if (!target) return refuseUpgrade(socket, '400 Bad Request', 'malformed request target')
        const why = target.path !== WS_PATH ? 'unknown path' : refuse(req, target)
        if (why) return refuseUpgrade(socket, '403 Forbidden', `Forbidden: ${why}`)
        wss.handleUpgrade(req, socket, head, (ws) =>
          lastResort(
            'WebSocket session',
            log,
            () => serveSocket(ws, service, log),
            () => ws.terminate(),
          ),
        )
      },
      () => refuseUpgrade(socket, '400 Bad Request', 'Bad Request'),
    )
  })
  wss.on('error', (e) => log('WebSocket server', e))

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, bindHost, () => resolve())
  })
  port = (server.address() as AddressInfo).port
  // After listening, a server error (e.g. too many open files on accept) is logged, not thrown.
  server.on('error', (e) => log('HTTP server', e))
  const shownHost = isLoopback(bindHost) ? '127.0.0.1' : bindHost
  return {
    url: `http://${shownHost}:${port}/?token=${token}`,
    port,
    token,
    cookieName: tokenCookieName(port),
    close: () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res
    .writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' })
    .end(`${text}\n`)
}

function refuseUpgrade(socket: Duplex, status: string, text: string): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`,
  )
}

function readCookie(header: string | undefined, name: string): string | null {
  if (typeof header !== 'string') return null
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}
