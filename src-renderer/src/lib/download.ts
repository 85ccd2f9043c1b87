// Saving text as a file from the page: a Blob behind an <a download> link. Browsers save it to the
// downloads folder (or ask); Electron's default download handling does the same, so no IPC is needed.

export function downloadText(fileName: string, text: string, type = 'application/yaml'): void {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const a = document.createElement('a')
  a.href = url
  a.download = fileName
  a.style.display = 'none'
  document.body.appendChild(a)
  a.click()
  a.remove()
  // The click has started the download by the time the current task ends.
  setTimeout(() => URL.revokeObjectURL(url), 0)
}
