// Starts the parser worker from the TypeScript sources (tests, the CLI, web mode from a checkout): registers
// tsx's loader in this thread, then imports the real entry. Bundled builds start kernels/build/parse-worker.mjs
// instead and never load this file.
import { workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
await import(workerData.entry)
