// The renderer's only door to the engine. In Electron the preload exposes `window.whittle`; in a
// browser (web mode) the same contract runs over a WebSocket. Nothing else in the renderer touches
// either, so every component codes against WhittleApi and never learns which one it has.

import type { WhittleApi } from '@contract/api'
import { WS_PATH } from '@contract/wire'
import { createWsApi, type SocketLike } from './ws-client'

/** What the Electron preload puts on the page for dropped files (sandboxed Files carry no path). */
interface DropHelper {
  pathForFile(file: File): string
}

declare global {
  interface Window {
    whittle?: WhittleApi
    whittleDrop?: DropHelper
  }
}

let api: WhittleApi | null = null

/** The page URL's token must be repeated on the socket; without one the server's cookie still works. */
export function webSocketUrl(location: Pick<Location, 'protocol' | 'host' | 'search'>): string {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const token = new URLSearchParams(location.search).get('token')
  const query = token ? `?token=${encodeURIComponent(token)}` : ''
  return `${scheme}://${location.host}${WS_PATH}${query}`
}

/** Use this implementation instead of detecting one (tests drive the stores with a stand-in). */
export function provideApi(replacement: WhittleApi | null): void {
  api = replacement
}

export function getApi(): WhittleApi {
  if (api) return api
  if (window.whittle) {
    api = window.whittle
  } else {
    api = createWsApi({
      url: webSocketUrl(window.location),
      createSocket: (url) => new WebSocket(url) as unknown as SocketLike,
    })
  }
  return api
}

/** True in the desktop app (the preload is present). */
export function isDesktop(): boolean {
  return !!window.whittle
}

/**
 * The filesystem path of a file dropped on the window, or null where the page cannot know it
 * (a browser never reveals paths; only the desktop preload can).
 */
export function pathForDroppedFile(file: File): string | null {
  const helper = window.whittleDrop
  if (!helper) return null
  const p = helper.pathForFile(file)
  return p ? p : null
}
