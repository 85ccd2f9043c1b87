// SentencePiece-style BPE over a scored vocabulary (tokenizer.ggml.model = 'llama'), the way llama.cpp's
// SPM tokenizer runs it: start from single characters, repeatedly merge the adjacent pair whose
// concatenation is the vocabulary token with the highest score (leftmost on ties), and finally write every
// character that no token covers as its UTF-8 bytes (<0xXX> tokens).

import { MergeQueue } from './merge-queue'

export interface SpmVocab {
  /** Token text → id (the last id wins when a text repeats, as in llama.cpp). */
  ids: Map<string, number>
  scores: Float32Array
  /** Id of <0xXX> for every byte value, -1 where the vocabulary lacks it. */
  byteIds: Int32Array
  unkId: number | null
}

const utf8 = new TextEncoder()

/** SentencePiece's whitespace marker: every space in the input becomes this before merging. */
export const SPM_SPACE = '\u2581'

/** The text llama.cpp hands the merger: an optional leading space, then every ' ' escaped as ▁. */
export function spmPrepare(raw: string, addSpacePrefix: boolean): string {
  return (addSpacePrefix ? ' ' + raw : raw).replaceAll(' ', SPM_SPACE)
}

/**
 * Appends the ids of `text` (already prepared with spmPrepare) to `out`. `unrepresentable` is called with
 * a character that neither a token, its bytes nor an unknown token can express; it must throw.
 */
export function encodeSpm(text: string, vocab: SpmVocab, out: number[], unrepresentable: (ch: string) => never): void {
  if (text.length === 0) return
  // One symbol per code point, as a doubly linked list over the text (start and length in UTF-16 units).
  const n = countCodePoints(text)
  const start = new Int32Array(n)
  const len = new Int32Array(n)
  const prev = new Int32Array(n)
  const next = new Int32Array(n)
  for (let i = 0, pos = 0; i < n; i++) {
    const width = text.codePointAt(pos)! > 0xffff ? 2 : 1
    start[i] = pos
    len[i] = width
    prev[i] = i - 1
    next[i] = i + 1 < n ? i + 1 : -1
    pos += width
  }

  const queue = new MergeQueue()
  const tryPair = (left: number, right: number): void => {
    if (left < 0 || right < 0) return
    const id = vocab.ids.get(text.slice(start[left], start[left] + len[left] + len[right]))
    if (id === undefined) return
    queue.push({ priority: -vocab.scores[id], left, right, length: len[left] + len[right] })
  }
  for (let i = 1; i < n; i++) tryPair(i - 1, i)

  for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
    const { left, right } = c
    // Stale: one side was merged away or grew since this pair was proposed.
    if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== c.length || next[left] !== right) continue
    len[left] += len[right]
    len[right] = 0
    next[left] = next[right]
    if (next[right] >= 0) prev[next[right]] = left
    tryPair(prev[left], left)
    tryPair(left, next[left])
  }

  for (let i = 0; i >= 0; i = next[i]) {
    const piece = text.slice(start[i], start[i] + len[i])
    const id = vocab.ids.get(piece)
    if (id !== undefined) {
      out.push(id)
      continue
    }
    // Only single characters can be left without a token (every merge produced one): byte fallback.
    const bytes = utf8.encode(piece)
    if (bytes.every((b) => vocab.byteIds[b] >= 0)) for (const b of bytes) out.push(vocab.byteIds[b])
    else if (vocab.unkId !== null) out.push(vocab.unkId)
    else unrepresentable(piece)
  }
}

function countCodePoints(text: string): number {
  let n = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
    n++
  }
  return n
}
