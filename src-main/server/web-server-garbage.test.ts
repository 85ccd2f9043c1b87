// The web server must never die from a request. Garbage goes in at every entry point over real sockets:
// request lines, headers, paths and escapes, upgrades, WebSocket frames, and API calls with wrong
// arguments. Each must get its own refusal (400, 403, 431, a close code, an error result); afterwards the
// server must still answer a valid request, and the last-resort guard must not have been needed.
// (An exception escaping a handler would surface as an unhandled error, which fails the vitest run.)

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { API_CALLS } from '../contract/api'
import { WhittleService } from '../app/whittle-service'
import { abandon, rawHttp, rawWebSocket } from './probe-client'
import { MAX_WS_MESSAGE, startWebServer, type RunningWebServer } from './web-server'

let server: RunningWebServer
let dir: string
const guardHits: string[] = []

const TOKEN = 'c'.repeat(48)
const hostLine = (): string => `Host: 127.0.0.1:${server.port}`
const request = (target: string, headers: string[] = [hostLine()]): string =>
  [`GET ${target} HTTP/1.1`, ...headers, 'Connection: close', '', ''].join('\r\n')

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'whittle-web-garbage-'))
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title>')
  const service = new WhittleService({
    mode: 'web',
    version: 'test',
    demoPath: null,
    configDir: dir,
    exportDir: path.join(dir, 'exports'),
  })
  server = await startWebServer({ service, staticDir: dir, token: TOKEN, onError: (where) => guardHits.push(where) })
})
afterAll(async () => {
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The server still serves the page and still answers a contract call on a fresh socket. */
async function expectAlive(): Promise<void> {
  expect((await rawHttp(server.port, request(`/?token=${TOKEN}`))).status).toBe(200)
  const ws = await openSocket()
  expect(await call(ws, 1, 'appInfo')).toMatchObject({ ok: true, result: { mode: 'web' } })
  ws.close()
  expect(guardHits).toEqual([])
}

function openSocket(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=${TOKEN}`, { maxPayload: 64 * MAX_WS_MESSAGE })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

function closeCodeOf(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)))
}

function call(
  ws: WebSocket,
  id: number,
  method: unknown,
  params?: unknown,
  encoded?: string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (d: WebSocket.RawData): void => {
      const m = JSON.parse(String(d))
      if (m.type === 'result' && m.id === id) {
        ws.off('message', onMessage)
        ws.off('close', onClose)
        resolve(m)
      }
    }
    const onClose = (code: number): void => reject(new Error(`socket closed (${code}) instead of answering call ${id}`))
    ws.on('message', onMessage)
    ws.on('close', onClose)
    ws.send(encoded ?? JSON.stringify({ type: 'call', id, method, params }))
  })
}

describe('the web server survives garbage', () => {
  it('refuses hostile request lines with 400, before the token is even looked at', async () => {
    // Targets a URL parser reads as a host (they used to throw out of `new URL()` and kill the process),
    // other non-origin forms, and over-long or control-character targets.
    const targets = [
      '//[',
      'http://[',
      'http://:99999/',
      '//[/ws',
      'http://127.0.0.1:1/',
      '*',
      '//evil.example/',
      '/\u0001',
      `/${'a'.repeat(9000)}`,
    ]
    for (const t of targets) {
      const r = await rawHttp(server.port, request(t))
      expect(r.status, t.slice(0, 40)).toBe(400)
    }
    // With a valid token too: parsing comes first, so a token cannot make a bad target acceptable.
    for (const t of ['//[?token=' + TOKEN, 'http://[?token=' + TOKEN])
      expect((await rawHttp(server.port, request(t))).status, t).toBe(400)
    await expectAlive()
  })

  it('refuses malformed percent-escapes in the path with 400, also when authenticated', async () => {
    for (const p of ['/%', '/%c0%ae', '/%E0%A4%A', '/%zz', '/%ff%fe', '/a%', '/%00', '/index.html%']) {
      expect((await rawHttp(server.port, request(`${p}?token=${TOKEN}`))).status, p).toBe(400)
      expect((await rawHttp(server.port, request(p))).status, p).toBe(400)
    }
    // Well-formed escapes that climb out of the renderer folder are still just "not found".
    expect((await rawHttp(server.port, request(`/..%2F..%2Fetc%2Fpasswd?token=${TOKEN}`))).status).toBe(404)
    expect((await rawHttp(server.port, request(`/%2e%2e/%2e%2e/etc/passwd?token=${TOKEN}`))).status).toBe(404)
    await expectAlive()
  })

  it('refuses hostile headers and bytes that are not HTTP', async () => {
    const t = `/?token=${TOKEN}`
    const cases: [string | Buffer, number][] = [
      [request(t, []), 400], // no Host: Node refuses an HTTP/1.1 request without one
      [request(t, ['Host: [']), 403],
      [request(t, [hostLine(), 'Origin: http://[']), 403],
      [request(t, [hostLine(), 'Origin: null']), 403],
      [request('/', [hostLine(), `Cookie: ===;;;${server.cookieName}`]), 403],
      [request('/', [hostLine(), `Cookie: ${server.cookieName}=${'\u00ff'.repeat(10)}`]), 403],
      [request('/?token=%', [hostLine()]), 403], // a broken escape in the query is just a wrong token
      [request(t, [hostLine(), `X-Big: ${'a'.repeat(40_000)}`]), 431],
      [request(t, [hostLine(), 'Bad Header Name: 1']), 400],
      [request(t, [hostLine(), 'Content-Length: -1']), 400],
      [request(t, [hostLine(), 'Transfer-Encoding: chunked', 'Content-Length: 3']), 400],
      [`POST ${t} HTTP/1.1\r\n${hostLine()}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`, 405],
      [`BREW ${t} HTTP/1.1\r\n${hostLine()}\r\n\r\n`, 400],
      [`GET ${t} HTTP/9.9\r\n${hostLine()}\r\n\r\n`, 400],
      [Buffer.from([0, 0xff, 0xfe, 13, 10, 13, 10]), 400],
      ['\r\n\r\n\u0001\r\n\r\n', 400],
    ]
    for (const [bytes, status] of cases)
      expect((await rawHttp(server.port, bytes)).status, String(bytes).slice(0, 60)).toBe(status)
    // A client that connects, sends half a request line and vanishes.
    await abandon(server.port, 'GET /ws?tok')
    await abandon(
      server.port,
      `GET /ws?token=${TOKEN} HTTP/1.1\r\n${hostLine()}\r\nUpgrade: websocket\r\nConnection: Upg`,
    )
    await expectAlive()
  }, 60_000)

  it('refuses hostile upgrades', async () => {
    const upgrade = (target: string, extra: string[] = []): string =>
      [
        `GET ${target} HTTP/1.1`,
        hostLine(),
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        ...extra,
        '',
        '',
      ].join('\r\n')
    expect((await rawHttp(server.port, upgrade('//[/ws'))).status).toBe(400)
    expect((await rawHttp(server.port, upgrade(`http://[/ws?token=${TOKEN}`))).status).toBe(400)
    expect((await rawHttp(server.port, upgrade(`/ws%?token=${TOKEN}`))).status).toBe(400)
    expect((await rawHttp(server.port, upgrade(`/w%c0%ae?token=${TOKEN}`))).status).toBe(400)
    expect((await rawHttp(server.port, upgrade('/ws'))).status).toBe(403)
    expect((await rawHttp(server.port, upgrade(`/other?token=${TOKEN}`))).status).toBe(403)
    // Authenticated, but not a WebSocket handshake ws can accept: ws refuses it (400) by itself.
    const noKey = [
      `GET /ws?token=${TOKEN} HTTP/1.1`,
      hostLine(),
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      '',
      '',
    ].join('\r\n')
    expect((await rawHttp(server.port, noKey)).status).toBe(400)
    expect((await rawHttp(server.port, upgrade(`/ws?token=${TOKEN}`, ['Sec-WebSocket-Version: 99']))).status).toBe(400)
    await expectAlive()
  })

  it('closes sockets that send oversized, non-UTF-8, binary, non-JSON or malformed messages, with the right code', async () => {
    // Over the limit: 1009 (Message Too Big).
    let ws = await openSocket()
    let closed = closeCodeOf(ws)
    ws.send('x'.repeat(MAX_WS_MESSAGE + 1))
    expect(await closed).toBe(1009)
    // A frame header that claims 2^62 bytes is refused from the header alone, nothing allocated for it.
    let raw = await rawWebSocket(server.port, `/ws?token=${TOKEN}`)
    raw.frame(0x1, Buffer.from('{}'), { claimedLength: 1n << 62n })
    expect(await raw.closed).toBe(1009)
    // A text frame that is not UTF-8: 1007.
    ws = await openSocket()
    closed = closeCodeOf(ws)
    ws.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false })
    expect(await closed).toBe(1007)
    // Binary, not JSON, JSON that is not a call: 1003.
    const unsupported: (string | Buffer)[] = [
      Buffer.from([1, 2, 3]),
      'not json',
      '"a string"',
      'null',
      '[]',
      '42',
      '{"type":"call"}',
      '{"type":"call","id":"1","method":"appInfo"}',
      '{"type":"call","id":1.5,"method":"appInfo"}',
      '{"type":"event","id":1}',
      '[['.repeat(50_000),
    ]
    for (const m of unsupported) {
      ws = await openSocket()
      closed = closeCodeOf(ws)
      ws.send(m)
      expect(await closed, String(m).slice(0, 40)).toBe(1003)
    }
    // Protocol faults in the framing itself: reserved opcode, RSV bits, an unmasked client frame,
    // a fragmented control frame: 1002.
    const faults: [number, Buffer, { fin?: boolean; rsv?: number; mask?: boolean }][] = [
      [0x3, Buffer.from('x'), {}],
      [0x1, Buffer.from('{}'), { rsv: 4 }],
      [0x1, Buffer.from('{}'), { mask: false }],
      [0x9, Buffer.from('x'), { fin: false }],
    ]
    for (const [opcode, payload, options] of faults) {
      raw = await rawWebSocket(server.port, `/ws?token=${TOKEN}`)
      raw.frame(opcode, payload, options)
      expect(await raw.closed, `opcode ${opcode} ${JSON.stringify(options)}`).toBe(1002)
    }
    // A client that vanishes mid-frame.
    raw = await rawWebSocket(server.port, `/ws?token=${TOKEN}`)
    raw.frame(0x1, Buffer.from('{"type":"call"'), { claimedLength: 1000n })
    raw.destroy()
    await expectAlive()
  }, 60_000)

  it('answers every API call with wrong argument types with an error result, never a dropped socket', async () => {
    const ws = await openSocket()
    let id = 100
    // Unknown or non-string methods, including one whose toString is not callable.
    for (const method of [
      'deleteEverything',
      '__proto__',
      'constructor',
      'toString',
      '',
      1,
      null,
      { toString: 1 },
      ['appInfo'],
    ]) {
      expect(await call(ws, id++, method, {}), JSON.stringify(method)).toMatchObject({
        ok: false,
        error: { code: 'validation' },
      })
    }
    // Nesting deep enough to overflow a recursive walker (JSON.stringify of it throws RangeError).
    const depth = 100_000
    const deepRecipe = (id: number, method: string): string =>
      `{"type":"call","id":${id},"method":"${method}","params":{"recipe":${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}}}`
    const garbage: unknown[] = [
      null,
      0,
      -1,
      1e308,
      'x',
      true,
      [],
      [1, 2],
      { __proto__: null, x: 1 },
      { constructor: 1 },
      { path: {} },
      { path: 1 },
      { path: 'relative' },
      { path: '/\u0000x' },
      { path: 'x'.repeat(10_000) },
      { modelId: 1 },
      { modelId: {} },
      { modelId: 'nope' },
      { folder: 'yes' },
      { recipe: 'steps' },
      { recipe: [] },
      { text: 5 },
      { id: [] },
      { layer: -1, head: 1.5, modelId: 'x' },
      { modelId: 'x', format: 'gguf', ggufType: '../../../x' },
      { modelId: 'x', format: '../x' },
      { kind: 'export', modelId: 'x', format: 'gguf', out: 42 },
      { kind: 'perplexity', modelId: 'x', text: ['/etc/passwd'] },
      { kind: 'constructor', modelId: 'x' },
    ]
    let answered = 0
    for (const method of API_CALLS) {
      for (const params of garbage) {
        const r = await call(ws, id++, method, params)
        // Calls without arguments may accept some of these; what matters is an answer of the right shape.
        expect(typeof r.ok, `${method} ${JSON.stringify(params)?.slice(0, 60)}`).toBe('boolean')
        if (!r.ok) expect(r.error).toMatchObject({ message: expect.any(String), code: expect.any(String) })
        answered++
      }
    }
    expect(answered).toBe(API_CALLS.length * garbage.length)
    // The wrong-typed calls that carry arguments are refused as validation errors, not internal faults.
    expect(await call(ws, id++, 'openModel', { path: 1 })).toMatchObject({ ok: false, error: { code: 'validation' } })
    expect(await call(ws, id++, 'startJob', { kind: 'perplexity', modelId: 'x', text: ['/etc/passwd'] })).toMatchObject(
      { ok: false, error: { code: 'validation' } },
    )
    for (const method of ['recipeToYaml', 'predictCompression', 'checkRecipe', 'startJob']) {
      const n = id++
      expect(await call(ws, n, null, null, deepRecipe(n, method)), method).toMatchObject({ ok: false })
    }
    // The largest message the UI sends: a recipe file at the renderer's 1 MiB limit (MAX_RECIPE_FILE_BYTES),
    // made of the characters JSON escapes worst (6 bytes each). It must be answered, not closed with 1009.
    const worstRecipe = '\u0001'.repeat(1 << 20)
    const n = id++
    const encoded = JSON.stringify({ type: 'call', id: n, method: 'checkRecipe', params: { text: worstRecipe } })
    expect(Buffer.byteLength(encoded)).toBeGreaterThan(6 << 20)
    expect(await call(ws, n, null, null, encoded)).toMatchObject({ ok: false, error: { code: expect.any(String) } })
    ws.close()
    await expectAlive()
  }, 120_000)
})
