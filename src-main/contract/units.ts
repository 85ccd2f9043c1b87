// One unit convention for sizes everywhere Whittle shows one (CLI, UI, report, errors): binary units,
// KiB/MiB/GiB, as llama.cpp prints them and as memory is counted. Shared through the contract so the
// renderer and the engine cannot drift apart.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const

/** 1536 → "1.50 KiB"; bytes below 1 KiB as a whole number. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return String(bytes)
  let v = bytes
  let u = 0
  // Move up while the value would print as 1024.00 or more in the current unit.
  while (u < UNITS.length - 1 && Number(v.toFixed(2)) >= 1024) {
    v /= 1024
    u++
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(2)} ${UNITS[u]}`
}
