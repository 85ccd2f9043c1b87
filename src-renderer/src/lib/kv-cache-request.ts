// The KV-cache analysis form and the job spec it becomes. Settings are typed as the CLI's --kv takes
// them ('token:4', 'kivi:2', 'q8_0'), separated by commas or spaces; the engine checks each one.

import type { JobSpec, ModelId } from '@contract/api'

export interface KvCacheForm {
  /** Settings text; empty = the engine's default list (each scheme at its usual widths). */
  settings: string
  seqlen: number
  /** Windows of the bundled eval text to measure (null = all). */
  maxWindows: number | null
  /** The context length the memory saving is shown for. */
  contextLength: number
}

export const DEFAULT_KV_FORM: Readonly<KvCacheForm> = {
  settings: '',
  seqlen: 256,
  maxWindows: 64,
  contextLength: 4096,
}

export function kvSettingList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
}

export function kvCacheSpec(modelId: ModelId, form: KvCacheForm): Extract<JobSpec, { kind: 'kv-cache' }> {
  const settings = kvSettingList(form.settings)
  return {
    kind: 'kv-cache',
    modelId,
    seqlen: form.seqlen,
    contextLength: form.contextLength,
    ...(form.maxWindows ? { maxWindows: form.maxWindows } : {}),
    ...(settings.length ? { settings } : {}),
  }
}
