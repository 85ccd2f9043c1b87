// Test support: talks to the web server over raw TCP, byte for byte, so tests can send what no well-behaved
// HTTP or WebSocket client would (hostile request lines, broken escapes, forged frame headers).

import { randomBytes } from 'node:crypto'
import net from 'node:net'

export interface RawReply {
  /** The status code of the first response line, or null when the server sent none. */
  status: number | null
  /** Everything received up to the end of the response head (or until the connection ended). */
  head: string
}

const PROBE_TIMEOUT_MS = 10_000

/** Sends raw bytes and reads back the response head (the server may also just close the connection). */
export function rawHttp(port: number, bytes: string | Buffer): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let got = Buffer.alloc(0)
    const finish = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const text = got.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      const head = end >= 0 ? text.slice(0, end) : text
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head)
      resolve({ status: m ? Number(m[1]) : null, head })
    }
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms to ${JSON.stringify(String(bytes).slice(0, 80))}`))
    }, PROBE_TIMEOUT_MS)
    socket.on('data', (d) => {
      got = Buffer.concat([got, d])
      if (got.includes('\r\n\r\n')) finish()
    })
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', () => undefined) // a reset after the server answered is fine; 'close' follows
    socket.write(bytes)
  })
}

/** Connects, sends part of something, and resets the connection without waiting for an answer. */
export function abandon(port: number, bytes: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(bytes, () => {
        socket.resetAndDestroy()
        resolve()
      })
    })
    socket.on('error', () => resolve())
  })
}

/** A WebSocket opened by hand, for sending frames the ws client would never build. */
export interface RawWebSocket {
  /** Writes one frame; client frames are masked unless told otherwise. */
  frame(
    opcode: number,
    payload: Buffer,
    options?: { fin?: boolean; rsv?: number; mask?: boolean; claimedLength?: bigint },
  ): void
  /** Resolves with the server's close code (null if the connection ended without a close frame). */
  closed: Promise<number | null>
  destroy(): void
}

export async function rawWebSocket(
  port: number,
  pathAndQuery: string,
  extraHeaders: string[] = [],
): Promise<RawWebSocket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => undefined)
  const key = randomBytes(16).toString('base64')
  socket.write(
    [
      `GET ${pathAndQuery} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      ...extraHeaders,
      '',
      '',
    ].join('\r\n'),
  )
  let buffered = Buffer.alloc(0)
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      buffered = Buffer.concat([buffered, d])
      const end = buffered.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.off('data', onData)
      const head = buffered.subarray(0, end).toString('latin1')
      buffered = buffered.subarray(end + 4)
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`))
      else resolve()
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error('connection closed during the upgrade')))
  })
  const closed = new Promise<number | null>((resolve) => {
    const scan = (): void => {
      const code = closeCode(buffered)
      if (code !== undefined) resolve(code)
    }
    socket.on('data', (d) => {
      buffered = Buffer.concat([buffered, d])
      scan()
    })
    socket.on('close', () => resolve(closeCode(buffered) ?? null))
    scan()
  })
  return {
    frame(opcode, payload, options = {}) {
      const { fin = true, rsv = 0, mask = true } = options
      const length = options.claimedLength ?? BigInt(payload.length)
      const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
      const maskBit = mask ? 0x80 : 0
      if (length < 126n) head.push(maskBit | Number(length))
      else if (length < 65536n) head.push(maskBit | 126, Number(length >> 8n), Number(length & 0xffn))
      else {
        head.push(maskBit | 127)
        for (let i = 7; i >= 0; i--) head.push(Number((length >> BigInt(8 * i)) & 0xffn))
      }
      const key = mask ? randomBytes(4) : Buffer.alloc(0)
      const body = Buffer.from(payload)
      if (mask) for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3]
      socket.write(Buffer.concat([Buffer.from(head), key, body]))
    },
    closed,
    destroy: () => socket.destroy(),
  }
}

/** The code of the first close frame among the server's (unmasked) frames; undefined if none yet. */
function closeCode(bytes: Buffer): number | null | undefined {
  let at = 0
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at] & 0x0f
    let len = bytes[at + 1] & 0x7f
    let start = at + 2
    if (len === 126) {
      if (start + 2 > bytes.length) return undefined
      len = bytes.readUInt16BE(start)
      start += 2
    } else if (len === 127) {
      if (start + 8 > bytes.length) return undefined
      len = Number(bytes.readBigUInt64BE(start))
      start += 8
    }
    if (start + len > bytes.length) return undefined
    if (opcode === 0x8) return len >= 2 ? bytes.readUInt16BE(start) : null
    at = start + len
  }
  return undefined
}
