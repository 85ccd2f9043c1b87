// A binary min-heap of candidate merges for the BPE-style tokenizers. Both of llama.cpp's algorithms pick
// the best adjacent pair (highest score, or lowest merge rank) and break ties by the leftmost position,
// so one queue ordered by (priority, left) serves both.

export interface MergeCandidate {
  /** Lower pops first (SentencePiece passes -score, byte-level BPE the merge rank). */
  priority: number
  /** Index of the left symbol. */
  left: number
  /** Index of the right symbol. */
  right: number
  /** Combined length when pushed: a candidate whose symbols have changed since is stale. */
  length: number
}

function before(a: MergeCandidate, b: MergeCandidate): boolean {
  return a.priority < b.priority || (a.priority === b.priority && a.left < b.left)
}

export class MergeQueue {
  private readonly items: MergeCandidate[] = []

  get size(): number {
    return this.items.length
  }

  push(c: MergeCandidate): void {
    const h = this.items
    h.push(c)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(h[i], h[parent])) break
      ;[h[i], h[parent]] = [h[parent], h[i]]
      i = parent
    }
  }

  pop(): MergeCandidate | undefined {
    const h = this.items
    if (h.length === 0) return undefined
    const top = h[0]
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let best = i
        if (l < h.length && before(h[l], h[best])) best = l
        if (r < h.length && before(h[r], h[best])) best = r
        if (best === i) break
        ;[h[i], h[best]] = [h[best], h[i]]
        i = best
      }
    }
    return top
  }
}
