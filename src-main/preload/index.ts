// The only bridge between the sandboxed renderer and the main process: exactly one function per
// contract call, plus the job-event subscription. Nothing of ipcRenderer itself is exposed.

import { contextBridge, ipcRenderer, webUtils } from 'electron'
import { API_CALLS, JOB_EVENT, type JobUpdate } from '../contract/api'
import { DROP_CHANNEL, channelFor } from '../main/channels'

type Reply = { ok: true; result: unknown } | { ok: false; error: { message: string; code: string } }

const api: Record<string, unknown> = {}
for (const call of API_CALLS) {
  api[call] = async (params?: unknown): Promise<unknown> => {
    const reply = (await ipcRenderer.invoke(channelFor(call), params)) as Reply
    if (!reply.ok) throw new Error(reply.error.message)
    return reply.result
  }
}
api.onJob = (listener: (u: JobUpdate) => void): (() => void) => {
  const handler = (_e: unknown, u: JobUpdate): void => listener(u)
  ipcRenderer.on(JOB_EVENT, handler)
  return () => ipcRenderer.removeListener(JOB_EVENT, handler)
}
contextBridge.exposeInMainWorld('whittle', api)

// Dropped files: read the real path here, where the page cannot reach, and tell the main process the
// user chose it. The renderer receives the path to pass to openModel.
contextBridge.exposeInMainWorld('whittleDrop', {
  pathForFile: (file: File): string => {
    const p = webUtils.getPathForFile(file)
    if (p) ipcRenderer.send(DROP_CHANNEL, p)
    return p
  },
})
