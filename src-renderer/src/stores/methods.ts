// The engine's method catalogue (listMethods): every compression method with its kind, summary and
// parameter specs. Loaded once; the recipe editor's inputs, the method select and the Prune view's
// methods are all built from it, so the UI offers exactly what the engine validates.

import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import type { MethodInfo } from '@contract/method-params'
import { getApi } from '../bridge'
import { methodsOfKind } from '../lib/recipe-edit'
import { useErrorStore } from './errors'

export const useMethodsStore = defineStore('methods', () => {
  const errors = useErrorStore()
  const catalogue = shallowRef<readonly MethodInfo[]>([])
  const loaded = ref(false)
  let loading: Promise<void> | null = null

  /** Asks the engine once; later calls share the answer (a failure is reported and may be retried). */
  function load(): Promise<void> {
    loading ??= getApi()
      .listMethods()
      .then(
        (methods) => {
          catalogue.value = methods
          loaded.value = true
        },
        (e: unknown) => {
          loading = null
          errors.report(e)
        },
      )
    return loading
  }

  const pruneMethods = computed(() => methodsOfKind(catalogue.value, 'prune'))
  const byName = (name: string): MethodInfo | undefined => catalogue.value.find((m) => m.name === name)

  return { catalogue, loaded, load, pruneMethods, byName }
})
