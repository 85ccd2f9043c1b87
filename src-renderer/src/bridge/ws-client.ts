// Web mode's side of the contract: every WhittleApi call travels as one WireCall over a WebSocket and
// comes back as a WireResult; job updates arrive as WireEvents. The socket is created through a
// factory so the same code runs in the browser and, in tests, against the real server through `ws`.

import { API_CALLS, type ApiCall, type JobUpdate, type WhittleApi } from '@contract/api'
import type { ServerMessage, WireCall } from '@contract/wire'

/** The part of the browser WebSocket this client uses (the `ws` package's client matches it too). */
export interface SocketLike {
  readonly readyState: number
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

export interface WsClientOptions {
  url: string
  createSocket: (url: string) => SocketLike
  /** First reconnect delay; doubles per failed attempt up to maxRetryMs. */
  retryMs?: number
  maxRetryMs?: number
}

const SOCKET_OPEN = 1

interface PendingCall {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
  method: ApiCall
}

/** A WhittleApi over a WebSocket, plus `close()` to stop reconnecting (tests, page unload). */
export type WsApi = WhittleApi & { close(): void }

export function createWsApi(options: WsClientOptions): WsApi {
  const retryMs = options.retryMs ?? 500
  const maxRetryMs = options.maxRetryMs ?? 10_000
  const pending = new Map<number, PendingCall>()
  // Calls made while the socket is not open wait here; they are sent, in order, once it opens.
  let queued: WireCall[] = []
  const jobListeners = new Set<(update: JobUpdate) => void>()
  let nextId = 1
  let socket: SocketLike | null = null
  let delay = retryMs
  let reconnectTimer: ReturnType<typeof setTimeout> | null = null
  let stopped = false

  const connect = (): void => {
    reconnectTimer = null
    if (stopped) return
    let ws: SocketLike
    try {
      ws = options.createSocket(options.url)
    } catch (e) {
      failAll(`cannot connect to the Whittle server: ${e instanceof Error ? e.message : String(e)}`)
      scheduleReconnect()
      return
    }
    socket = ws
    ws.onopen = () => {
      delay = retryMs
      const toSend = queued
      queued = []
      for (const call of toSend) ws.send(JSON.stringify(call))
    }
    ws.onmessage = (ev) => handleMessage(ev.data)
    // Errors are always followed by a close event, which is where the cleanup happens.
    ws.onerror = () => undefined
    ws.onclose = (ev) => {
      if (socket === ws) socket = null
      const why = ev.reason ? `${ev.reason}, code ${ev.code}` : `code ${ev.code}`
      failAll(`lost the connection to the Whittle server (${why}); reconnecting`)
      scheduleReconnect()
    }
  }

  const scheduleReconnect = (): void => {
    if (stopped || reconnectTimer) return
    reconnectTimer = setTimeout(connect, delay)
    delay = Math.min(delay * 2, maxRetryMs)
  }

  /** Whatever was in flight or waiting can no longer be answered by this socket: say so. */
  const failAll = (message: string): void => {
    const calls = [...pending.values()]
    pending.clear()
    queued = []
    for (const call of calls) call.reject(new Error(`${call.method}: ${message}`))
  }

  const handleMessage = (data: unknown): void => {
    let msg: ServerMessage
    try {
      msg = JSON.parse(String(data)) as ServerMessage
    } catch {
      return // Not ours to crash on; the server only sends JSON.
    }
    if (typeof msg !== 'object' || msg === null) return
    if (msg.type === 'event' && msg.event === 'job') {
      for (const listener of jobListeners) listener(msg.payload)
      return
    }
    if (msg.type !== 'result') return
    const call = pending.get(msg.id)
    if (!call) return
    pending.delete(msg.id)
    if (msg.ok) call.resolve(msg.result)
    else call.reject(new Error(msg.error?.message ?? `${call.method} failed`))
  }

  const invoke = (method: ApiCall, params: unknown): Promise<unknown> => {
    if (stopped) return Promise.reject(new Error(`${method}: the connection to the Whittle server is closed`))
    return new Promise((resolve, reject) => {
      const call: WireCall = { type: 'call', id: nextId++, method, params }
      pending.set(call.id, { resolve, reject, method })
      if (socket && socket.readyState === SOCKET_OPEN) socket.send(JSON.stringify(call))
      else {
        queued.push(call)
        // Someone is waiting now: try at once rather than at the end of the backoff.
        if (!socket) {
          if (reconnectTimer) clearTimeout(reconnectTimer)
          connect()
        }
      }
    })
  }

  const api: Record<string, unknown> = {}
  for (const method of API_CALLS) api[method] = (params?: unknown) => invoke(method, params)
  api.onJob = (listener: (update: JobUpdate) => void): (() => void) => {
    jobListeners.add(listener)
    return () => jobListeners.delete(listener)
  }
  api.close = (): void => {
    stopped = true
    if (reconnectTimer) clearTimeout(reconnectTimer)
    reconnectTimer = null
    failAll('the client was closed')
    socket?.close(1000, 'client closed')
    socket = null
  }
  connect()
  return api as unknown as WsApi
}
