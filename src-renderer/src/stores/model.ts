// The open model: its summary and tensors, the recent list, and how a model gets opened.

import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import type { AppInfo, ModelSummary, RecentModel, TensorInfo } from '@contract/api'
import { getApi } from '../bridge'
import { useErrorStore } from './errors'

export const useModelStore = defineStore('model', () => {
  const errors = useErrorStore()
  const appInfo = ref<AppInfo | null>(null)
  const summary = shallowRef<ModelSummary | null>(null)
  const tensors = shallowRef<TensorInfo[]>([])
  const recent = ref<RecentModel[]>([])
  /** What is being opened right now (a path, or 'demo'), for the UI to show. */
  const opening = ref<string | null>(null)
  const error = ref<string | null>(null)
  const loading = computed(() => opening.value !== null)
  // Each open gets a ticket; only the newest may install its result (a slow open that finishes after
  // a faster later one must not replace it).
  let ticket = 0

  /** The name a person calls the model: its folder or file name. */
  const displayName = computed(() => {
    const p = summary.value?.path
    if (!p) return ''
    const parts = p.split(/[\\/]+/).filter(Boolean)
    return parts.at(-1) ?? p
  })

  async function load(what: string, request: () => Promise<ModelSummary>): Promise<boolean> {
    const mine = ++ticket
    opening.value = what
    error.value = null
    try {
      const opened = await request()
      const list = await getApi().listTensors({ modelId: opened.id })
      if (mine !== ticket) return false
      summary.value = opened
      tensors.value = list
      // Messages about the previous model no longer describe what is on screen.
      errors.clear()
      return true
    } catch (e) {
      if (mine !== ticket) return false
      const message = e instanceof Error ? e.message : String(e)
      error.value = message
      errors.report(message)
      return false
    } finally {
      if (mine === ticket) opening.value = null
      void refreshRecent()
    }
  }

  function open(path: string): Promise<boolean> {
    const trimmed = path.trim()
    if (!trimmed) {
      errors.report('Type the path of a model file or folder first.')
      return Promise.resolve(false)
    }
    return load(trimmed, () => getApi().openModel({ path: trimmed }))
  }

  function openDemo(): Promise<boolean> {
    return load('demo', () => getApi().openDemo())
  }

  /** Desktop only: the native dialog, then open what was chosen (nothing when cancelled). */
  async function browse(folder: boolean): Promise<boolean> {
    try {
      const chosen = await getApi().pickModel({ folder })
      return chosen ? await open(chosen) : false
    } catch (e) {
      errors.report(e)
      return false
    }
  }

  async function refreshRecent(): Promise<void> {
    try {
      recent.value = await getApi().recentModels()
    } catch {
      // The recent list is a convenience; a failure here is not worth a banner.
    }
  }

  /**
   * First start: learn what this host offers, then open the model named on the command line, or
   * else the bundled demo, so the window is never empty.
   */
  async function init(): Promise<void> {
    try {
      appInfo.value = await getApi().appInfo()
    } catch (e) {
      errors.report(e)
      return
    }
    void refreshRecent()
    if (summary.value || opening.value) return
    if (appInfo.value.startupPath) await open(appInfo.value.startupPath)
    else if (appInfo.value.demoPath) await openDemo()
  }

  return {
    appInfo,
    summary,
    tensors,
    recent,
    opening,
    loading,
    error,
    displayName,
    open,
    openDemo,
    browse,
    refreshRecent,
    init,
  }
})
