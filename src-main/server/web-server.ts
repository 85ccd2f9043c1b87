// Web mode: the same renderer and the same engine, the engine running here in Node and the renderer in
// a browser tab. The server is a local tool, not a website, so it defends itself like one:
// - it binds to 127.0.0.1 unless told otherwise (and warns when told);
// - every HTTP and WebSocket request must carry the random token (query `token`, or the cookie set
//   from it on the first page load);
// - Host must name this server (stops DNS rebinding) and Origin, when sent, must be this server
//   (stops a foreign page from driving the engine through the user's browser).

import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'
import { API_CALLS, type ApiCall } from '../contract/api'
import { WS_PATH, type ServerMessage, type WireCall } from '../contract/wire'
import type { WhittleService } from '../app/whittle-service'

export interface WebServerOptions {
  service: WhittleService
  staticDir: string
  port?: number
  host?: string
  /** Fixed token (tests); random otherwise. */
  token?: string
}

export interface RunningWebServer {
  url: string
  port: number
  token: string
  close(): Promise<void>
}

const COOKIE = 'whittle_token'
const CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
  "connect-src 'self' ws://127.0.0.1:* ws://localhost:*", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
].join('; ')
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.woff2': 'font/woff2',
}
const MAX_WS_MESSAGE = 1 << 20

export function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1'
}

export async function startWebServer(options: WebServerOptions): Promise<RunningWebServer> {
  const token = options.token ?? randomBytes(24).toString('hex')
  const bindHost = options.host ?? '127.0.0.1'
  const staticDir = path.resolve(options.staticDir)
  const service = options.service
  let port = options.port ?? 0

  const allowedHosts = (): Set<string> => {
    const names = new Set(['127.0.0.1', 'localhost', '[::1]'])
    if (!isLoopback(bindHost)) names.add(bindHost.includes(':') ? `[${bindHost}]` : bindHost)
    return new Set([...names].map((h) => `${h}:${port}`))
  }

  const tokenOk = (req: http.IncomingMessage, url: URL): boolean => {
    const given = url.searchParams.get('token') ?? readCookie(req.headers.cookie, COOKIE)
    if (!given) return false
    const a = Buffer.from(given), b = Buffer.from(token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  /** Null when acceptable, else the reason for refusing. */
  const refuse = (req: http.IncomingMessage, url: URL): string | null => {
    if (!req.headers.host || !allowedHosts().has(req.headers.host.toLowerCase())) return 'unexpected Host header'
    const origin = req.headers.origin
    if (origin !== undefined && !allowedHosts().has(origin.replace(/^https?:\/\//, '').toLowerCase())) return 'foreign Origin'
    if (!tokenOk(req, url)) return 'missing or wrong token'
    return null
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://placeholder')
    const why = refuse(req, url)
    if (why) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`Forbidden: ${why}\n`)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end()
      return
    }
    const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).replace(/^\/+/, '')
    const file = path.resolve(staticDir, rel)
    if (!file.startsWith(staticDir + path.sep)) {
      res.writeHead(404).end()
      return
    }
    try {
      const st = await stat(file)
      if (!st.isFile()) throw new Error('not a file')
      const headers: Record<string, string> = {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'content-length': String(st.size),
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
      }
      if (file.endsWith('.html')) {
        headers['content-security-policy'] = CSP
        headers['set-cookie'] = `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`
      }
      res.writeHead(200, headers)
      if (req.method === 'HEAD') res.end()
      else createReadStream(file).pipe(res)
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n')
    }
  })

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE })
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://placeholder')
    const why = url.pathname !== WS_PATH ? 'unknown path' : refuse(req, url)
    if (why) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nForbidden: ${why}\n`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveSocket(ws, service))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, bindHost, () => resolve())
  })
  port = (server.address() as AddressInfo).port
  const shownHost = isLoopback(bindHost) ? '127.0.0.1' : bindHost
  return {
    url: `http://${shownHost}:${port}/?token=${token}`,
    port,
    token,
    close: () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function serveSocket(ws: WebSocket, service: WhittleService): void {
  const send = (m: ServerMessage): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m))
  }
  const unsubscribe = service.onJob((payload) => send({ type: 'event', event: 'job', payload }))
  ws.on('close', unsubscribe)
  ws.on('message', async (data) => {
    let call: WireCall
    try {
      call = JSON.parse(String(data))
    } catch {
      ws.close(1003, 'invalid JSON')
      return
    }
    if (typeof call !== 'object' || call === null || call.type !== 'call' || !Number.isSafeInteger(call.id)) {
      ws.close(1003, 'invalid message')
      return
    }
    if (!(API_CALLS as readonly string[]).includes(call.method)) {
      send({ type: 'result', id: call.id, ok: false, error: { message: `unknown call ${String(call.method).slice(0, 64)}`, code: 'validation' } })
      return
    }
    const r = await service.handle(call.method as ApiCall, call.params)
    send(r.ok ? { type: 'result', id: call.id, ok: true, result: r.result } : { type: 'result', id: call.id, ok: false, error: r.error })
  })
}

function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === name) return v.join('=')
  }
  return null
}
