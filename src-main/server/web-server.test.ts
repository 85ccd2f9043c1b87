// Web mode's defences, tested over real sockets: token on every request, Host and Origin checks,
// and the WebSocket contract itself.

import { mkdtempSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { WhittleService } from '../app/whittle-service'
import { startWebServer, type RunningWebServer } from './web-server'

let server: RunningWebServer

function get(
  pathAndQuery: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: pathAndQuery,
        headers: { host: `127.0.0.1:${server.port}`, ...headers },
      },
      (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

function openSocket(query: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws${query}`, { headers })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
}

beforeAll(async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-web-'))
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title>')
  const service = new WhittleService({ mode: 'web', version: 'test', demoPath: null, configDir: dir })
  server = await startWebServer({ service, staticDir: dir, token: 'a'.repeat(48) })
})
afterAll(() => server?.close())

describe('web mode security', () => {
  it('binds to loopback and prints a tokened URL', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=a{48}$/)
  })

  it('serves the page with the token, with a CSP and a token cookie', async () => {
    const r = await get(`/?token=${server.token}`)
    expect(r.status).toBe(200)
    expect(r.headers['content-security-policy']).toContain("script-src 'self'")
    const cookie = String(r.headers['set-cookie'])
    expect(cookie.split(';').map((p) => p.trim())).toEqual([
      `whittle_token_${server.port}=${server.token}`,
      'HttpOnly',
      'SameSite=Strict',
      'Path=/',
    ])
  })

  it('refuses requests without the token or with a wrong one', async () => {
    expect((await get('/')).status).toBe(403)
    expect((await get('/?token=' + 'b'.repeat(48))).status).toBe(403)
    expect((await get('/?token=short')).status).toBe(403)
  })

  it('accepts the cookie in place of the query token', async () => {
    expect((await get('/index.html', { cookie: `other=1; ${server.cookieName}=${server.token}` })).status).toBe(200)
    // The cookie is per port: the old shared name, or another port's cookie, is not this server's token.
    expect((await get('/index.html', { cookie: `whittle_token=${server.token}` })).status).toBe(403)
    expect((await get('/index.html', { cookie: `whittle_token_${server.port + 1}=${server.token}` })).status).toBe(403)
  })

  it('refuses a foreign Host (DNS rebinding) and a foreign Origin', async () => {
    expect((await get(`/?token=${server.token}`, { host: `evil.example:${server.port}` })).status).toBe(403)
    expect((await get(`/?token=${server.token}`, { origin: 'http://evil.example' })).status).toBe(403)
    expect((await get(`/?token=${server.token}`, { origin: `http://127.0.0.1:${server.port}` })).status).toBe(200)
  })

  it('does not serve files outside the renderer folder', async () => {
    expect((await get(`/..%2F..%2Fetc%2Fpasswd?token=${server.token}`)).status).toBe(404)
  })

  it('refuses WebSocket upgrades without the token or from a foreign origin', async () => {
    await expect(openSocket('')).rejects.toThrow(/403/)
    await expect(openSocket(`?token=${server.token}`, { origin: 'http://evil.example' })).rejects.toThrow(/403/)
  })

  it('answers contract calls over the WebSocket and validates their arguments', async () => {
    const ws = await openSocket(`?token=${server.token}`, { origin: `http://127.0.0.1:${server.port}` })
    const call = (id: number, method: string, params?: unknown): Promise<Record<string, unknown>> =>
      new Promise((resolve) => {
        const onMessage = (d: WebSocket.RawData): void => {
          const m = JSON.parse(String(d))
          if (m.type === 'result' && m.id === id) {
            ws.off('message', onMessage)
            resolve(m)
          }
        }
        ws.on('message', onMessage)
        ws.send(JSON.stringify({ type: 'call', id, method, params }))
      })
    const info = await call(1, 'appInfo')
    expect(info).toMatchObject({ ok: true, result: { mode: 'web', canPickFiles: false } })
    const bad = await call(2, 'openModel', { path: 'relative/path' })
    expect(bad).toMatchObject({ ok: false, error: { code: 'validation' } })
    const extra = await call(3, 'openModel', { path: '/x', evil: 1 })
    expect(extra).toMatchObject({ ok: false, error: { code: 'validation' } })
    const unknown = await call(4, 'deleteEverything', {})
    expect(unknown).toMatchObject({ ok: false })
    ws.close()
  })
})
