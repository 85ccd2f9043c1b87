// The Export dialog's state: which model (a compression result, or the open model itself), the format and
// its options, a destination the engine suggests (editable; web mode has no folder picker), the export
// job with progress and cancel, and what it wrote: files, the read-back verdict, the report.

import { defineStore } from 'pinia'
import { reactive, ref, shallowRef } from 'vue'
import type { ExportFormat, ExportRequest, ExportResult, JobId, ModelId } from '@contract/api'
import { GGUF_EXPORT_TYPES, type GgufTypeFlags } from '@contract/gguf-export-types'
import { jobResult } from '@contract/job-result'
import { getApi } from '../bridge'
import { messageOf, useErrorStore } from './errors'
import { failureOf } from './inspect'
import { isTerminal, useJobStore } from './jobs'

export const EXPORT_FORMATS: { id: ExportFormat; label: string }[] = [
  { id: 'safetensors', label: 'safetensors (dense)' },
  { id: 'gptq', label: 'GPTQ (packed, transformers / vLLM)' },
  { id: 'compressed-tensors', label: 'compressed-tensors (pack-quantized)' },
  { id: 'compressed-tensors-w8a8', label: 'compressed-tensors W8A8 (int8 or fp8, per channel; vLLM)' },
  { id: 'gguf', label: 'GGUF (llama.cpp)' },
  { id: 'sparse-bitmask', label: 'compressed-tensors sparse-bitmask (pruned, unstructured)' },
  { id: 'sparse-24-bitmask', label: 'compressed-tensors sparse-24-bitmask (pruned 2:4)' },
  { id: 'squeezellm', label: 'SqueezeLLM (lookup tables + sparse part; its loader, vLLM)' },
]
/** The engine's list (contract/gguf-export-types.ts), the mixes first: what most people pick. */
export const GGUF_TYPES = [...GGUF_EXPORT_TYPES].sort((a, b) => Number(b.includes('_K_')) - Number(a.includes('_K_')))

export interface ExportForm {
  format: ExportFormat
  ggufType: string
  gptqFormat: 'gptq' | 'gptq_v2'
  dtype: '' | 'F32' | 'F16' | 'BF16'
  out: string
  /** gguf: llama-quantize's type-level flags (the dialog's GGUF options). */
  gguf?: GgufTypeFlags
}

/** The job spec the form describes (options that do not apply to the format are left out). */
export function exportSpec(modelId: ModelId, f: ExportForm): ExportRequest {
  return {
    modelId,
    format: f.format,
    out: f.out.trim(),
    ...(f.format === 'gguf'
      ? { ggufType: f.ggufType, ...(f.gguf && Object.keys(f.gguf).length > 0 ? { gguf: f.gguf } : {}) }
      : {}),
    ...(f.format === 'gptq' ? { gptqFormat: f.gptqFormat } : {}),
    ...(f.format === 'safetensors' && f.dtype ? { dtype: f.dtype } : {}),
  }
}

export const useExportStore = defineStore('export', () => {
  const jobs = useJobStore()
  const errors = useErrorStore()
  const open = ref(false)
  const modelId = ref<ModelId | null>(null)
  const modelName = ref('')
  /** A compression result can be packed; the open model only converts (safetensors ↔ GGUF). */
  const compressed = ref(false)
  const form = reactive<ExportForm>({ format: 'gguf', ggufType: 'Q4_K_M', gptqFormat: 'gptq', dtype: '', out: '' })
  const outEdited = ref(false)
  const jobId = ref<JobId | null>(null)
  const running = ref(false)
  const failure = ref<string | null>(null)
  const result = shallowRef<ExportResult | null>(null)
  const reportHtml = ref<string | null>(null)
  /** True while the engine is choosing a destination for the current format (Export waits for it). */
  const suggesting = ref(false)
  let suggestTicket = 0

  async function suggest(): Promise<void> {
    if (!modelId.value || outEdited.value) return
    const mine = ++suggestTicket
    // The previous format's path must not stand in for this one's, even for a moment.
    form.out = ''
    suggesting.value = true
    try {
      const p = await getApi().suggestExportPath({
        modelId: modelId.value,
        format: form.format,
        ...(form.format === 'gguf' ? { ggufType: form.ggufType } : {}),
      })
      if (mine === suggestTicket && !outEdited.value) form.out = p
    } catch (e) {
      errors.report(e)
    } finally {
      if (mine === suggestTicket) suggesting.value = false
    }
  }

  /** Opens the dialog for a model; `compressedResult` says whether packed formats apply. */
  async function openFor(id: ModelId, name: string, compressedResult: boolean): Promise<void> {
    modelId.value = id
    modelName.value = name
    compressed.value = compressedResult
    const packed: ExportFormat[] = ['gptq', 'compressed-tensors', 'compressed-tensors-w8a8', 'squeezellm']
    if (!compressedResult && packed.includes(form.format)) form.format = 'gguf'
    outEdited.value = false
    failure.value = null
    result.value = null
    reportHtml.value = null
    open.value = true
    await suggest()
  }

  function setFormat(format: ExportFormat): void {
    form.format = format
    void suggest()
  }

  function setGgufType(type: string): void {
    form.ggufType = type
    void suggest()
  }

  function editOut(value: string): void {
    form.out = value
    outEdited.value = true
  }

  async function run(): Promise<void> {
    if (!modelId.value || running.value || suggesting.value) return
    if (!form.out.trim()) {
      failure.value = 'Choose a destination folder.'
      return
    }
    failure.value = null
    result.value = null
    reportHtml.value = null
    running.value = true
    try {
      const id = await jobs.start({ kind: 'export', ...exportSpec(modelId.value, form) })
      jobId.value = id
      const end = await jobs.whenFinished(id)
      const exported = jobResult(end, 'export')
      if (exported) result.value = exported
      else failure.value = end.state === 'done' ? 'the engine sent no export result' : failureOf(end)
    } catch (e) {
      failure.value = messageOf(e)
    } finally {
      running.value = false
      jobId.value = null
      // The field keeps showing where the files went; a change of format or type suggests a new place.
      outEdited.value = false
    }
  }

  async function cancel(): Promise<void> {
    const id = jobId.value
    const u = id ? jobs.get(id) : undefined
    if (id && (!u || !isTerminal(u.state))) await jobs.cancel(id).catch((e) => errors.report(e))
  }

  async function showReport(): Promise<void> {
    const p = result.value?.reportPath
    if (!p) return
    try {
      reportHtml.value = await getApi().readReport({ path: p })
    } catch (e) {
      errors.report(e)
    }
  }

  function close(): void {
    if (running.value) return
    open.value = false
    reportHtml.value = null
  }

  return {
    open,
    modelId,
    modelName,
    compressed,
    form,
    jobId,
    running,
    failure,
    result,
    reportHtml,
    suggesting,
    openFor,
    setFormat,
    setGgufType,
    editOut,
    run,
    cancel,
    showReport,
    close,
  }
})
