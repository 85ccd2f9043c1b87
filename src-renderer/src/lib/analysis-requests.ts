// From what the user typed in the analysis forms to the job specs the engine accepts. Number inputs
// hand over numbers, empty strings or junk; every field here becomes either a value inside the
// engine's limits (src-main/app/validate.ts) or "absent", so a typo never turns into a refused request.

import type { CalibrationRequest, JobSpec, ModelId, PerplexityProtocol } from '@contract/api'

/** What an <input type="number" v-model.number> can hold. */
export type NumberField = number | string | null | undefined

export const SEQLEN_CHOICES: readonly number[] = [128, 256, 512, 1024, 2048]
export const DEFAULT_PPL_SEQLEN = 256
export const DEFAULT_THRESHOLD = 6
/** The engine's defaults when a request leaves them out: a capture reads 128 windows, a probe 16. */
export const DEFAULT_CAPTURE_SAMPLES = 128
export const DEFAULT_PROBE_SAMPLES = 16
export const DEFAULT_CALIBRATION_SEQLEN = 256

/** The engine's limits. */
const SEQLEN_RANGE: [number, number] = [2, 8192]
const SAMPLES_RANGE: [number, number] = [1, 4096]
const MAX_WINDOWS_RANGE: [number, number] = [1, 1 << 24]
const THRESHOLD_RANGE: [number, number] = [0, 1e6]

/** A finite number from a field, or null when it is empty or not a number. */
export function numberOf(v: NumberField): number | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string' && v.trim() === '') return null
  const n = typeof v === 'number' ? v : Number(v)
  return Number.isFinite(n) ? n : null
}

/** An integer inside [lo, hi], or null when the field says nothing usable. */
export function intInRange(v: NumberField, [lo, hi]: [number, number]): number | null {
  const n = numberOf(v)
  return n === null ? null : Math.min(hi, Math.max(lo, Math.round(n)))
}

export interface PerplexityForm {
  /** Absolute path of a UTF-8 text; empty = the bundled eval text. */
  text: string
  seqlen: NumberField
  /** Empty = every window of the text. */
  maxWindows: NumberField
  protocol: PerplexityProtocol
}

export interface CalibrationForm {
  samples: NumberField
  seqlen: NumberField
}

export interface ActivationForm extends CalibrationForm {
  threshold: NumberField
}

export function perplexitySpec(modelId: ModelId, form: PerplexityForm): Extract<JobSpec, { kind: 'perplexity' }> {
  const spec: Extract<JobSpec, { kind: 'perplexity' }> = {
    kind: 'perplexity',
    modelId,
    seqlen: intInRange(form.seqlen, SEQLEN_RANGE) ?? DEFAULT_PPL_SEQLEN,
  }
  const text = form.text.trim()
  if (text) spec.text = text
  const maxWindows = intInRange(form.maxWindows, MAX_WINDOWS_RANGE)
  if (maxWindows !== null) spec.maxWindows = maxWindows
  if (form.protocol !== 'gptq') spec.protocol = form.protocol
  return spec
}

export function calibrationRequest(form: CalibrationForm, defaultSamples: number): CalibrationRequest {
  return {
    samples: intInRange(form.samples, SAMPLES_RANGE) ?? defaultSamples,
    seqlen: intInRange(form.seqlen, SEQLEN_RANGE) ?? DEFAULT_CALIBRATION_SEQLEN,
  }
}

export function activationSpec(modelId: ModelId, form: ActivationForm): Extract<JobSpec, { kind: 'activations' }> {
  const n = numberOf(form.threshold)
  const threshold = n === null ? DEFAULT_THRESHOLD : Math.min(THRESHOLD_RANGE[1], Math.max(THRESHOLD_RANGE[0], n))
  return { kind: 'activations', modelId, calibration: calibrationRequest(form, DEFAULT_CAPTURE_SAMPLES), threshold }
}

export function probeSpec(
  kind: 'heads' | 'layers',
  modelId: ModelId,
  form: CalibrationForm,
): Extract<JobSpec, { kind: 'heads' | 'layers' }> {
  return { kind, modelId, calibration: calibrationRequest(form, DEFAULT_PROBE_SAMPLES) }
}

/** The last part of a path, for short labels ("tinystories_eval.txt"). */
export function baseName(p: string): string {
  return (
    p
      .split(/[\\/]+/)
      .filter(Boolean)
      .at(-1) ?? p
  )
}
