// JSON.parse silently keeps the last of two equal keys. Safetensors requires tensor names to be unique,
// and a second entry with the same name would otherwise hide the first (and leave its bytes unaccounted
// for), so the header's top-level keys are scanned separately. The text must already be valid JSON
// (JSON.parse succeeded), which keeps this scanner simple: it only has to find where values end.

function skipWhitespace(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break
    i++
  }
  return i
}

/** Index just past the string literal whose opening quote is at `i`. */
function skipString(s: string, i: number): number {
  i++
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c === 0x5c)
      i += 2 // backslash: skip the escaped character
    else if (c === 0x22) return i + 1
    else i++
  }
  return i
}

/** Index just past the JSON value starting at `i`. */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i)
  if (c === 0x22) return skipString(s, i)
  if (c === 0x7b || c === 0x5b) {
    let depth = 0
    while (i < s.length) {
      const d = s.charCodeAt(i)
      if (d === 0x22) {
        i = skipString(s, i)
        continue
      }
      if (d === 0x7b || d === 0x5b) depth++
      else if (d === 0x7d || d === 0x5d) {
        depth--
        if (depth === 0) return i + 1
      }
      i++
    }
    return i
  }
  // number, true, false, null: runs until a delimiter
  while (i < s.length) {
    const d = s.charCodeAt(i)
    if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break
    i++
  }
  return i
}

/** The first top-level key that appears twice in a valid JSON object text, or null. */
export function findDuplicateTopLevelKey(json: string): string | null {
  const seen = new Set<string>()
  let i = skipWhitespace(json, 0)
  if (json.charCodeAt(i) !== 0x7b) return null
  i++
  for (;;) {
    i = skipWhitespace(json, i)
    if (i >= json.length || json.charCodeAt(i) === 0x7d) return null
    if (json.charCodeAt(i) === 0x2c) {
      i++
      continue
    }
    const keyEnd = skipString(json, i)
    const key = JSON.parse(json.slice(i, keyEnd)) as string
    if (seen.has(key)) return key
    seen.add(key)
    i = skipWhitespace(json, keyEnd)
    i++ // the colon
    i = skipWhitespace(json, i)
    i = skipValue(json, i)
  }
}
