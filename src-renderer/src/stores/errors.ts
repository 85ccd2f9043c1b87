// Everything that goes wrong ends up here and is shown in the error banner, never as a blank screen.

import { defineStore } from 'pinia'
import { ref } from 'vue'

export interface ShownError {
  id: number
  message: string
}

/** The most messages kept; a burst of failures should not bury the screen. */
const MAX_SHOWN = 5

/** One readable line for any thrown value. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name
  if (typeof e === 'string') return e
  try {
    return JSON.stringify(e) ?? String(e)
  } catch {
    return String(e)
  }
}

export const useErrorStore = defineStore('errors', () => {
  const errors = ref<ShownError[]>([])
  let nextId = 1

  function report(e: unknown): void {
    const message = messageOf(e)
    // The same failure reported twice in a row (a retry) shows once.
    if (errors.value.at(-1)?.message === message) return
    errors.value.push({ id: nextId++, message })
    if (errors.value.length > MAX_SHOWN) errors.value.splice(0, errors.value.length - MAX_SHOWN)
  }

  function dismiss(id: number): void {
    errors.value = errors.value.filter((e) => e.id !== id)
  }

  function clear(): void {
    errors.value = []
  }

  return { errors, report, dismiss, clear }
})
