// Web mode's WebSocket framing for the contract in api.ts. Electron does not use this file:
// there each call is its own ipcRenderer.invoke channel.

import type { ApiCall, ApiError, JobUpdate } from './api'

/** The WebSocket lives at this path; the page URL's `token` query parameter must be repeated on it. */
export const WS_PATH = '/ws'

export interface WireCall {
  type: 'call'
  id: number
  method: ApiCall
  params: unknown
}

export type WireResult =
  { type: 'result'; id: number; ok: true; result: unknown } | { type: 'result'; id: number; ok: false; error: ApiError }

export interface WireEvent {
  type: 'event'
  event: 'job'
  payload: JobUpdate
}

export type ServerMessage = WireResult | WireEvent
