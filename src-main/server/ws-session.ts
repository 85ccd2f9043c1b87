// One authenticated WebSocket: contract calls in, results and job events out.
// Every way a peer can misbehave ends in a close code, never an exception:
// - a message over the size limit: ws closes with 1009 (Message Too Big) and reports it on 'error';
// - a text frame that is not UTF-8: ws closes with 1007; protocol faults (bad opcode, RSV bits): 1002;
// - a binary frame, text that is not JSON, or JSON that is not a call: we close with 1003;
// - a call with a wrong method or wrong arguments: an error result for that call; the socket stays open.

import type { RawData, WebSocket } from 'ws'
import { API_CALLS, type ApiCall } from '../contract/api'
import type { ServerMessage } from '../contract/wire'
import type { WhittleService } from '../app/whittle-service'
import { lastResort, type ServerErrorLog } from './last-resort'

/**
 * The largest message a client may send. The renderer's biggest messages carry a recipe file's text
 * (at most 1 MiB, see MAX_RECIPE_FILE_BYTES in the renderer) or a recipe object (at most 1 MB of JSON):
 * JSON-escaping can grow text up to 6× (every control byte becomes \u00XX), so 16 MiB leaves room.
 */
export const MAX_WS_MESSAGE = 16 * 1024 * 1024

/** WebSocket close codes (RFC 6455 §7.4.1). */
const UNSUPPORTED_DATA = 1003
const INTERNAL_ERROR = 1011

export function serveSocket(ws: WebSocket, service: WhittleService, log: ServerErrorLog): void {
  // Without this listener ws's own 'error' (over-limit message, invalid UTF-8, protocol fault, a reset
  // connection) would be an uncaught exception. ws has already begun closing with the right code when it
  // reports one, and these are the peer's faults, so there is nothing to add and nothing to log.
  ws.on('error', () => undefined)
  const send = (m: ServerMessage): void => {
    if (ws.readyState === ws.OPEN) ws.send(encode(m))
  }
  const unsubscribe = service.onJob((payload) =>
    lastResort(
      'job event',
      log,
      () => send({ type: 'event', event: 'job', payload }),
      () => undefined,
    ),
  )
  ws.on('close', unsubscribe)
  ws.on('message', (data, isBinary) => {
    lastResort(
      'websocket message',
      log,
      () => onMessage(ws, service, send, data, isBinary),
      () => ws.close(INTERNAL_ERROR, 'internal error'),
    )
  })
}

async function onMessage(
  ws: WebSocket,
  service: WhittleService,
  send: (m: ServerMessage) => void,
  data: RawData,
  isBinary: boolean,
): Promise<void> {
  if (isBinary) {
    ws.close(UNSUPPORTED_DATA, 'binary messages are not accepted')
    return
  }
  let message: unknown
  try {
    message = JSON.parse(rawText(data))
  } catch {
    ws.close(UNSUPPORTED_DATA, 'invalid JSON')
    return
  }
  if (!isPlainObject(message) || message.type !== 'call' || !Number.isSafeInteger(message.id)) {
    ws.close(UNSUPPORTED_DATA, 'invalid message')
    return
  }
  const id = message.id as number
  const method = message.method
  if (typeof method !== 'string' || !(API_CALLS as readonly string[]).includes(method)) {
    const shown =
      typeof method === 'string'
        ? JSON.stringify(method.slice(0, 64))
        : `of type ${method === null ? 'null' : typeof method}`
    send({ type: 'result', id, ok: false, error: { message: `unknown call ${shown}`, code: 'validation' } })
    return
  }
  const r = await service.handle(method as ApiCall, message.params)
  send(r.ok ? { type: 'result', id, ok: true, result: r.result } : { type: 'result', id, ok: false, error: r.error })
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** JSON for the wire; a result that cannot be encoded (a cycle, a BigInt) becomes an error result. */
function encode(m: ServerMessage): string {
  try {
    return JSON.stringify(m)
  } catch (e) {
    if (m.type !== 'result') throw e
    const why = e instanceof Error ? e.message : 'unknown reason'
    return JSON.stringify({
      type: 'result',
      id: m.id,
      ok: false,
      error: { message: `the result could not be encoded: ${why}`, code: 'internal' },
    } satisfies ServerMessage)
  }
}
