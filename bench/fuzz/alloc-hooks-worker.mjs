// Loaded first in every worker thread of a fuzz case runner: reports requests of 1 MiB or more to the
// main thread, which attributes them to the running case.

import { BroadcastChannel } from 'node:worker_threads'
import { ALLOCATION_CHANNEL, installAllocationHooks } from './alloc-hooks.mjs'

const channel = new BroadcastChannel(ALLOCATION_CHANNEL)
channel.unref()
installAllocationHooks((bytes) => {
  if (bytes >= 1 << 20) channel.postMessage(bytes)
})
