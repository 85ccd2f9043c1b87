import { describe, expect, it } from 'vitest'
import type { JobUpdate } from '../../contract/api'
import { WhittleError } from '../errors'
import { JobRegistry } from './job-registry'

describe('JobRegistry', () => {
  it('reports running then done with the result', async () => {
    const jobs = new JobRegistry()
    const seen: JobUpdate[] = []
    jobs.onUpdate((u) => seen.push(u))
    const scan = { modelId: 'm', k: 6, cells: [], seconds: 0, bytes: 0 }
    const { done } = jobs.start('scan', async (ctx) => {
      ctx.progress(0.5, 'half')
      return { kind: 'scan', result: scan }
    })
    const final = await done
    expect(final.state).toBe('done')
    expect(final.progress).toBe(1)
    // The kind narrows the result: a scan job's result is a ScanResult.
    expect(final.kind === 'scan' ? final.result : undefined).toEqual(scan)
    expect(seen[0].state).toBe('running')
    expect(seen.at(-1)?.state).toBe('done')
  })

  it('cancels cooperatively: the runner sees the signal and the job ends cancelled', async () => {
    const jobs = new JobRegistry()
    let iterations = 0
    const { id, done } = jobs.start('scan', async (ctx) => {
      for (;;) {
        ctx.checkCancelled()
        iterations++
        await new Promise((r) => setTimeout(r, 5))
      }
    })
    await new Promise((r) => setTimeout(r, 30))
    expect(jobs.cancel(id)).toBe(true)
    const final = await done
    expect(final.state).toBe('cancelled')
    expect(iterations).toBeGreaterThan(0)
    expect(jobs.cancel(id)).toBe(false)
  })

  it('turns a thrown error into a readable error state', async () => {
    const jobs = new JobRegistry()
    const { done } = jobs.start('tensor', async () => {
      throw new WhittleError('format', '/tmp/x.gguf', 'bad magic')
    })
    const final = await done
    expect(final.state).toBe('error')
    expect(final.error).toBe('/tmp/x.gguf: bad magic')
  })

  it('keeps a broken listener from breaking the job', async () => {
    const jobs = new JobRegistry()
    jobs.onUpdate(() => {
      throw new Error('socket closed')
    })
    const { done } = jobs.start('scan', async () => ({
      kind: 'scan',
      result: { modelId: 'm', k: 6, cells: [], seconds: 0, bytes: 0 },
    }))
    expect((await done).state).toBe('done')
  })
})
