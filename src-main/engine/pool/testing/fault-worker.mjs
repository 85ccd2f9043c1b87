// Test-only pool worker: the real kernels/build/pool-worker.mjs, plus calls that inject the faults a
// real worker can suffer, so worker-pool.test.ts can check the pool's recovery from each:
//   ['__test_exit', code]   the thread exits (as process.exit or a fatal error would) mid-task;
//   ['__test_throw']        an uncaught exception escapes the message handler;
//   ['__test_oom']          the thread allocates until its heap limit (PoolOptions.resourceLimits) kills it.
// The real worker's message handler is wrapped (not preceded by a second listener, which would receive
// the messages posted before the real one is attached), so these run first and stop the thread before
// it can answer.
import { parentPort } from 'node:worker_threads'

function inject(request) {
  const calls = Array.isArray(request?.calls) ? request.calls : []
  for (const call of calls) {
    if (call?.[0] === '__test_exit') process.exit(call[1] ?? 1)
    if (call?.[0] === '__test_throw') throw new Error('injected crash in the worker')
    if (call?.[0] === '__test_oom') {
      const hoard = []
      for (;;) hoard.push(new Array(1 << 20).fill(hoard.length))
    }
  }
}

const on = parentPort.on.bind(parentPort)
parentPort.on = (event, listener) =>
  on(
    event,
    event === 'message'
      ? (request) => {
          inject(request)
          listener(request)
        }
      : listener,
  )

await import(new URL('../../../../kernels/build/pool-worker.mjs', import.meta.url).href)
