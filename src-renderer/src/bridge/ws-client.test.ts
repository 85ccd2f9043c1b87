import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { JobUpdate } from '@contract/api'
import type { ServerMessage, WireCall } from '@contract/wire'
import { webSocketUrl } from './index'
import { createWsApi, type SocketLike, type WsApi } from './ws-client'

/** A stand-in for the browser WebSocket, driven by the test as the server would drive the real one. */
class FakeSocket implements SocketLike {
  readyState = 0
  onopen: ((ev: unknown) => void) | null = null
  onmessage: ((ev: { data: unknown }) => void) | null = null
  onclose: ((ev: { code: number; reason: string }) => void) | null = null
  onerror: ((ev: unknown) => void) | null = null
  readonly sent: WireCall[] = []

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open')
    this.sent.push(JSON.parse(data) as WireCall)
  }
  close(code = 1000, reason = ''): void {
    this.serverClose(code, reason)
  }
  // Server side:
  open(): void {
    this.readyState = 1
    this.onopen?.({})
  }
  reply(message: ServerMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) })
  }
  serverClose(code: number, reason = ''): void {
    if (this.readyState === 3) return
    this.readyState = 3
    this.onclose?.({ code, reason })
  }
}

let sockets: FakeSocket[]
let api: WsApi

function latest(): FakeSocket {
  return sockets[sockets.length - 1]
}

beforeEach(() => {
  vi.useFakeTimers()
  sockets = []
  api = createWsApi({
    url: 'ws://127.0.0.1:1234/ws?token=abc',
    createSocket: (url) => {
      const s = new FakeSocket(url)
      sockets.push(s)
      return s
    },
    retryMs: 100,
    maxRetryMs: 800,
  })
})

afterEach(() => {
  api.close()
  vi.useRealTimers()
})

describe('web-mode client', () => {
  it('queues calls until the socket opens, then sends them in order with the wire shape', async () => {
    const info = api.appInfo()
    const opened = api.openModel({ path: '/m' })
    expect(latest().sent).toEqual([])
    latest().open()
    const [first, second] = latest().sent
    expect(first).toMatchObject({ type: 'call', method: 'appInfo' })
    // Calls without an argument carry no params at all.
    expect('params' in first).toBe(false)
    expect(second).toMatchObject({ type: 'call', method: 'openModel', params: { path: '/m' } })
    expect(second.id).not.toBe(first.id)

    latest().reply({ type: 'result', id: second.id, ok: true, result: { id: 'model-1' } })
    latest().reply({ type: 'result', id: first.id, ok: true, result: { mode: 'web' } })
    await expect(opened).resolves.toEqual({ id: 'model-1' })
    await expect(info).resolves.toEqual({ mode: 'web' })
  })

  it('turns an ApiError into an Error carrying its message', async () => {
    latest().open()
    const p = api.openModel({ path: '/nonexistent/model.safetensors' })
    const call = latest().sent[0]
    latest().reply({
      type: 'result',
      id: call.id,
      ok: false,
      error: { message: '/nonexistent/model.safetensors: no such file', code: 'not-found' },
    })
    await expect(p).rejects.toThrow('/nonexistent/model.safetensors: no such file')
  })

  it('delivers job events to every listener until it unsubscribes', () => {
    latest().open()
    const a: JobUpdate[] = []
    const b: JobUpdate[] = []
    const stopA = api.onJob((u) => a.push(u))
    api.onJob((u) => b.push(u))
    const update: JobUpdate = { id: 'j1', kind: 'scan', state: 'running', progress: 0.5, message: 'layer 2/5' }
    latest().reply({ type: 'event', event: 'job', payload: update })
    stopA()
    latest().reply({ type: 'event', event: 'job', payload: { ...update, progress: 0.75 } })
    expect(a.map((u) => u.progress)).toEqual([0.5])
    expect(b.map((u) => u.progress)).toEqual([0.5, 0.75])
  })

  it('ignores messages that are not JSON or answer no pending call', async () => {
    latest().open()
    const p = api.recentModels()
    latest().onmessage?.({ data: 'not json' })
    latest().onmessage?.({ data: 'null' })
    latest().reply({ type: 'result', id: 9999, ok: true, result: 'stray' })
    latest().reply({ type: 'result', id: latest().sent[0].id, ok: true, result: [] })
    await expect(p).resolves.toEqual([])
  })

  it('rejects what is in flight when the socket closes, then reconnects with growing delays', async () => {
    latest().open()
    const inFlight = api.listTensors({ modelId: 'm' })
    latest().serverClose(1006)
    await expect(inFlight).rejects.toThrow(/listTensors: lost the connection to the Whittle server \(code 1006\)/)

    // Each failed attempt waits longer: 100, 200, 400, then capped at 800 ms.
    const attemptsAfter = (ms: number): number => {
      vi.advanceTimersByTime(ms)
      return sockets.length
    }
    expect(sockets).toHaveLength(1)
    expect(attemptsAfter(99)).toBe(1)
    expect(attemptsAfter(1)).toBe(2)
    latest().serverClose(1006)
    expect(attemptsAfter(199)).toBe(2)
    expect(attemptsAfter(1)).toBe(3)
    latest().serverClose(1006)
    expect(attemptsAfter(400)).toBe(4)
    latest().serverClose(1006)
    expect(attemptsAfter(800)).toBe(5)
    latest().serverClose(1006)
    expect(attemptsAfter(800)).toBe(6)

    // A successful open resets the delay.
    latest().open()
    latest().serverClose(1001)
    expect(attemptsAfter(100)).toBe(7)
  })

  it('connects at once when a call is made while waiting to reconnect, and rejects it if that fails', async () => {
    latest().serverClose(1006)
    expect(sockets).toHaveLength(1)
    const p = api.appInfo()
    expect(sockets).toHaveLength(2)
    latest().serverClose(1008, 'Forbidden')
    await expect(p).rejects.toThrow(
      'appInfo: lost the connection to the Whittle server (Forbidden, code 1008); reconnecting',
    )
  })

  it('keeps job listeners across a reconnect', () => {
    const seen: string[] = []
    api.onJob((u) => seen.push(u.id))
    latest().open()
    latest().serverClose(1006)
    vi.advanceTimersByTime(100)
    latest().open()
    latest().reply({
      type: 'event',
      event: 'job',
      payload: { id: 'after', kind: 'tensor', state: 'done', progress: 1, message: 'done' },
    })
    expect(seen).toEqual(['after'])
  })

  it('stops for good when closed', async () => {
    latest().open()
    const p = api.appInfo()
    api.close()
    await expect(p).rejects.toThrow(/closed/)
    await expect(api.appInfo()).rejects.toThrow(/closed/)
    vi.advanceTimersByTime(10_000)
    expect(sockets).toHaveLength(1)
  })
})

describe('webSocketUrl', () => {
  it('repeats the page token on the socket path and follows the page scheme', () => {
    expect(webSocketUrl({ protocol: 'http:', host: '127.0.0.1:5177', search: '?token=a1b2' })).toBe(
      'ws://127.0.0.1:5177/ws?token=a1b2',
    )
    expect(webSocketUrl({ protocol: 'https:', host: 'example.test', search: '?x=1&token=t' })).toBe(
      'wss://example.test/ws?token=t',
    )
  })

  it('leaves the token off when the page has none (the server cookie then applies)', () => {
    expect(webSocketUrl({ protocol: 'http:', host: 'localhost:9', search: '' })).toBe('ws://localhost:9/ws')
  })
})
