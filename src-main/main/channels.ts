// IPC channel names, shared by the main process and the preload (which must not import Node modules).
import type { ApiCall } from '../contract/api'

export const channelFor = (call: ApiCall): string => `whittle:${call}`
export const DROP_CHANNEL = 'whittle:dropped-path'
