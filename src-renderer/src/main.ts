// Renderer entry: Vue + Pinia, and a safety net so no failure ever leaves a blank window.

import { createPinia } from 'pinia'
import { createApp } from 'vue'
import App from './App.vue'
import { useErrorStore } from './stores/errors'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia)

const errors = useErrorStore(pinia)
app.config.errorHandler = (e) => errors.report(e)
window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault()
  errors.report(e.reason)
})
window.addEventListener('error', (e) => {
  // Browsers report a ResizeObserver that could not deliver every notification in one frame as an
  // error; it is harmless (the charts resize on the next frame) and not the user's concern.
  if (!e.error && /ResizeObserver loop/.test(e.message)) return
  errors.report(e.error ?? e.message)
})

app.mount('#app')
