// Driving a WhittleService in tests as the front ends do: a web-mode service on the bundled demo model,
// calls that throw on a refused request, and a job awaited to its end.

import path from 'node:path'
import type { JobSpec, JobUpdate } from '../../contract/api'
import { WhittleService } from '../whittle-service'

const repoRoot = path.resolve(__dirname, '../../..')

/** A web-mode service with the demo model, its settings and exports under `tmp`. */
export function demoService(tmp: string): WhittleService {
  return new WhittleService({
    mode: 'web',
    version: 'test',
    demoPath: path.join(repoRoot, 'resources/demo/stories260K'),
    configDir: tmp,
    exportDir: path.join(tmp, 'exports'),
  })
}

/** The call's result; a refused call throws with the service's message. */
export async function call<T>(
  service: WhittleService,
  method: Parameters<WhittleService['handle']>[0],
  params: unknown,
): Promise<T> {
  const r = await service.handle(method, params)
  if (!r.ok) throw new Error(r.error.message)
  return r.result as T
}

/**
 * Starts the job and resolves with its last update (done, error or cancelled). Listens before starting:
 * a job that fails at once ends before startJob answers with its id.
 */
export async function runJob(service: WhittleService, spec: JobSpec): Promise<JobUpdate> {
  const ended = new Map<string, JobUpdate>()
  let wanted: string | null = null
  let finish: ((u: JobUpdate) => void) | null = null
  const stop = service.onJob((u) => {
    if (!['done', 'error', 'cancelled'].includes(u.state)) return
    ended.set(u.id, u)
    if (u.id === wanted) finish?.(u)
  })
  try {
    wanted = await call<string>(service, 'startJob', spec)
    const id = wanted
    return await new Promise<JobUpdate>((resolve) => {
      finish = resolve
      const already = ended.get(id)
      if (already) resolve(already)
    })
  } finally {
    stop()
  }
}
