// The imatrix viewer: an importance matrix file opened for the current model (placed on its Linears by
// the engine), the entry on show, and the link between it and the activation view's inputs, which share
// one per-channel picture (mean x² of a Linear's input). The file is dropped when another model opens.

import { defineStore } from 'pinia'
import { markRaw, reactive, ref, shallowReactive, watch } from 'vue'
import type { ImatrixProfile, InputGroup, TensorRole } from '@contract/api'
import { getApi } from '../bridge'
import { findImatrixTensor, imatrixLayers, imatrixRoles, imatrixTensorForInput } from '../charts/imatrix-option'
import { messageOf, useErrorStore } from './errors'
import { useModelStore } from './model'

export const useImatrixStore = defineStore('imatrix', () => {
  const model = useModelStore()
  const errors = useErrorStore()
  /** The path field of the open form. */
  const path = ref('')
  const slot = shallowReactive({
    profile: null as ImatrixProfile | null,
    loading: false,
    failure: null as string | null,
  })
  /** The entry on show. */
  const selected = reactive({ layer: 0, role: 'q' as TensorRole })
  /**
   * The activation view's input to show, set by the link from an imatrix entry; the activation panel
   * follows it. `seq` makes a repeated request for the same input a change too.
   */
  const activationFocus = ref<{ layer: number; group: InputGroup; seq: number } | null>(null)
  let ticket = 0

  async function open(p: string = path.value): Promise<void> {
    const file = p.trim()
    if (!file) return
    const mine = ++ticket
    Object.assign(slot, { loading: true, failure: null })
    try {
      const profile = await getApi().readImatrix({
        path: file,
        ...(model.summary ? { modelId: model.summary.id } : {}),
      })
      if (mine !== ticket) return
      Object.assign(slot, { profile: markRaw(profile), loading: false })
      path.value = file
      const layer = imatrixLayers(profile)[0]
      if (layer !== undefined) select(layer, imatrixRoles(profile, layer)[0])
    } catch (e) {
      if (mine !== ticket) return
      Object.assign(slot, { loading: false, failure: messageOf(e) })
      errors.report(e)
    }
  }

  /**
   * Desktop: the native file dialog, then open what was chosen (a typed path outside the granted folders
   * is refused there by the path policy; a chosen one is not). Nothing when cancelled.
   */
  async function choose(): Promise<void> {
    try {
      const chosen = await getApi().pickModel({ folder: false })
      if (chosen) await open(chosen)
    } catch (e) {
      errors.report(e)
    }
  }

  function select(layer: number, role: TensorRole | undefined = selected.role): void {
    const profile = slot.profile
    if (!profile) return
    // A layer without the current role shows its first entry.
    const r = role && findImatrixTensor(profile, layer, role) ? role : imatrixRoles(profile, layer)[0]
    if (r) Object.assign(selected, { layer, role: r })
  }

  /** The link from the activation view: the entry that weighs that input; false when the file has none. */
  function showInput(layer: number, group: InputGroup): boolean {
    const t = slot.profile ? imatrixTensorForInput(slot.profile, layer, group) : null
    if (!t || t.role === null) return false
    Object.assign(selected, { layer, role: t.role })
    return true
  }

  /** The link back: asks the activation view to show this input. */
  function focusActivations(layer: number, group: InputGroup): void {
    activationFocus.value = { layer, group, seq: (activationFocus.value?.seq ?? 0) + 1 }
  }

  watch(
    () => model.summary?.id,
    () => {
      ticket++
      Object.assign(slot, { profile: null, loading: false, failure: null })
      activationFocus.value = null
    },
  )

  return { path, slot, selected, activationFocus, open, choose, select, showInput, focusActivations }
})
