// The outermost guard around every entry point of the web server (HTTP request, upgrade, WebSocket
// message). Each handler refuses bad input itself; this is only for what they did not foresee. A fault
// there must cost one request or one socket, never the process and the jobs it is running.

export type ServerErrorLog = (where: string, error: unknown) => void

/** One line on stderr: where it happened and what it was, without a stack that could echo request bytes. */
export const logToStderr: ServerErrorLog = (where, error) => {
  const what = error instanceof Error ? `${error.name}: ${error.message}` : typeof error
  console.error(`whittle web server: unexpected fault in ${where} (answered and carried on): ${what.slice(0, 300)}`)
}

/**
 * Runs `work` (sync or async); if it throws or rejects, logs and runs `recover` (e.g. answer 400, close the
 * socket). A fault in `recover` itself is logged too and goes no further.
 */
export function lastResort(where: string, log: ServerErrorLog, work: () => unknown, recover: () => void): void {
  const fail = (e: unknown): void => {
    try {
      log(where, e)
    } catch {
      // a failing logger must not take the process down either
    }
    try {
      recover()
    } catch (again) {
      try {
        log(`${where} (while recovering)`, again)
      } catch {
        // nothing left to do
      }
    }
  }
  try {
    const r = work()
    if (r instanceof Promise) r.catch(fail)
  } catch (e) {
    fail(e)
  }
}
