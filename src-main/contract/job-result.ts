// A finished job's result, typed by the kind the caller asked for. `update.kind === 'scan'` already
// narrows a JobUpdate; this is the same check for code that holds the kind in a variable (a store that
// runs several kinds through one function), where TypeScript cannot narrow a union by a generic key.
// The table below is indexed by that key instead, which it can type (one entry per kind, checked).

import type { JobKind, JobResults, JobUpdate } from './api'

type ResultPicker = { [K in JobKind]: (update: JobUpdate) => JobResults[K] | undefined }

const PICK: ResultPicker = {
  tensor: (u) => (u.kind === 'tensor' ? u.result : undefined),
  scan: (u) => (u.kind === 'scan' ? u.result : undefined),
  perplexity: (u) => (u.kind === 'perplexity' ? u.result : undefined),
  'kv-cache': (u) => (u.kind === 'kv-cache' ? u.result : undefined),
  activations: (u) => (u.kind === 'activations' ? u.result : undefined),
  heads: (u) => (u.kind === 'heads' ? u.result : undefined),
  layers: (u) => (u.kind === 'layers' ? u.result : undefined),
  compress: (u) => (u.kind === 'compress' ? u.result : undefined),
  export: (u) => (u.kind === 'export' ? u.result : undefined),
}

/** The result of a job that ended 'done' and is of `kind`; undefined for any other update. */
export function jobResult<K extends JobKind>(update: JobUpdate, kind: K): JobResults[K] | undefined {
  return update.state === 'done' ? PICK[kind](update) : undefined
}
