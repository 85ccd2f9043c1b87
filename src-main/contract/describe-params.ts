// A recipe step's parameters as people read them, shared by the UI and the HTML report so both say the
// same thing (and neither shows raw JSON).

/** A step's parameters as people read them: "sparsity 0.5 · pattern 2:4 · optimizer {name adamw}". */
export function describeParams(params: Record<string, unknown>): string {
  const one = (v: unknown): string => {
    if (v === null || v === undefined) return '—'
    if (Array.isArray(v)) return v.map(one).join(', ')
    if (typeof v === 'object') return `{${describeParams(v as Record<string, unknown>)}}`
    return String(v)
  }
  const parts = Object.entries(params).map(([k, v]) => `${k} ${one(v)}`)
  return parts.length ? parts.join(' · ') : 'defaults'
}
