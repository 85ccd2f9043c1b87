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

/** Starts the job and resolves with its last update (done, error or cancelled). */
export async function runJob(service: WhittleService, spec: JobSpec): Promise<JobUpdate> {
  const id = await call<string>(service, 'startJob', spec)
  return new Promise((resolve) => {
    const stop = service.onJob((u) => {
      if (u.id === id && ['done', 'error', 'cancelled'].includes(u.state)) {
        stop()
        resolve(u)
      }
    })
  })
}
