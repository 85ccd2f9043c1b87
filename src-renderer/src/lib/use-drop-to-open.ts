// Dropping a model file or folder anywhere on the window opens it. Only the desktop app can learn a
// dropped file's path (through its preload); a browser never reveals it, so web mode says so.

import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'
import { pathForDroppedFile } from '../bridge'
import { useErrorStore } from '../stores/errors'
import { useModelStore } from '../stores/model'

export const DROP_UNSUPPORTED = 'drop is supported in the desktop app; paste the path instead'

export function useDropToOpen(): { dragging: Ref<boolean> } {
  const model = useModelStore()
  const errors = useErrorStore()
  const dragging = ref(false)
  // dragenter/dragleave fire for every child element crossed; count them to know when we truly left.
  let depth = 0

  const hasFiles = (e: DragEvent): boolean => !!e.dataTransfer && [...e.dataTransfer.types].includes('Files')

  const onEnter = (e: DragEvent): void => {
    if (!hasFiles(e)) return
    e.preventDefault()
    depth++
    dragging.value = true
  }
  const onOver = (e: DragEvent): void => {
    if (!hasFiles(e)) return
    e.preventDefault()
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'
  }
  const onLeave = (e: DragEvent): void => {
    if (!hasFiles(e)) return
    depth = Math.max(0, depth - 1)
    if (depth === 0) dragging.value = false
  }
  const onDrop = (e: DragEvent): void => {
    if (!hasFiles(e)) return
    // Without this the browser navigates to the dropped file and the app is gone.
    e.preventDefault()
    depth = 0
    dragging.value = false
    const file = e.dataTransfer?.files[0]
    if (!file) return
    let path: string | null = null
    try {
      path = pathForDroppedFile(file)
    } catch (err) {
      errors.report(err)
      return
    }
    if (path) void model.open(path)
    else errors.report(DROP_UNSUPPORTED)
  }

  onMounted(() => {
    window.addEventListener('dragenter', onEnter)
    window.addEventListener('dragover', onOver)
    window.addEventListener('dragleave', onLeave)
    window.addEventListener('drop', onDrop)
  })
  onBeforeUnmount(() => {
    window.removeEventListener('dragenter', onEnter)
    window.removeEventListener('dragover', onOver)
    window.removeEventListener('dragleave', onLeave)
    window.removeEventListener('drop', onDrop)
  })
  return { dragging }
}
