// A cache of the teacher's top-k logits per training window, so that repeated epochs skip the teacher's
// forward pass (distill's teacher_topk).
//
// For each prediction row the cache keeps the k largest teacher logits with their token ids, and the
// teacher's softened mass outside them (the tail), as Σ_tail exp((z_v − z_max)/T). On a repeat the row is
// rebuilt as full teacher logits: the top-k exactly as they were, and the tail's logits chosen so that the
// tail keeps exactly its cached mass, spread over the tail tokens in proportion to the STUDENT's
// probabilities there. The distillation kernel then sees
//   KL = Σ_{v ∈ top-k} p_v·log(p_v / q_v) + p_tail·log(p_tail / q_tail),
// the KL over the top-k with the tail mass lumped into one bin (its gradient on a tail token v is
// q_v − p_tail·q_v / q_tail). That is the approximation; with k = vocabulary the tail is empty, the rebuilt
// logits are the teacher's own, and the loss and gradients equal the uncached ones bit for bit.
// Memory: windows · seqlen · (8k + 8) bytes in JS memory.

/** Tail logits when the cached tail mass is 0: exp underflows to 0 at any temperature, without −∞. */
const EMPTY_TAIL_LOGIT = -1e30

interface CachedWindow {
  /** Token ids of the top-k per row, [rows, k]. */
  ids: Int32Array
  /** The teacher's logits at those ids, [rows, k] (largest first). */
  logits: Float32Array
  /** log Σ_tail exp((z_v − z_max)/T) per row (−∞ when the tail is empty or underflows). */
  logTail: Float64Array
}

export class TeacherTopK {
  private readonly windows = new Map<number, CachedWindow>()
  readonly k: number

  /** k is clamped to the vocabulary. */
  constructor(
    k: number,
    readonly vocab: number,
    readonly seqlen: number,
    readonly temperature: number,
  ) {
    this.k = Math.min(Math.max(1, Math.floor(k)), vocab)
  }

  has(window: number): boolean {
    return this.windows.has(window)
  }

  get bytes(): number {
    return this.windows.size * this.seqlen * (8 * this.k + 8)
  }

  get size(): number {
    return this.windows.size
  }

  /** Stores row `pos` of `window` from the teacher's logits of that row. */
  store(window: number, pos: number, teacher: Float32Array): void {
    const V = this.vocab,
      k = this.k,
      T = this.seqlen
    let w = this.windows.get(window)
    if (!w) {
      w = { ids: new Int32Array(T * k), logits: new Float32Array(T * k), logTail: new Float64Array(T) }
      this.windows.set(window, w)
    }
    const top = topK(teacher, k)
    const invT = 1 / this.temperature
    let zmax = -Infinity
    for (let v = 0; v < V; v++) if (teacher[v] > zmax) zmax = teacher[v]
    const inTop = new Uint8Array(V)
    for (let j = 0; j < k; j++) {
      inTop[top[j]] = 1
      w.ids[pos * k + j] = top[j]
      w.logits[pos * k + j] = teacher[top[j]]
    }
    let tail = 0
    for (let v = 0; v < V; v++) if (!inTop[v]) tail += Math.exp((teacher[v] - zmax) * invT)
    w.logTail[pos] = Math.log(tail)
  }

  /**
   * Writes the rebuilt teacher logits of row `pos` of `window` into `out` [V], given the student's logits
   * of the same row (the tail follows the student's distribution there).
   */
  rebuild(window: number, pos: number, student: Float32Array, out: Float32Array): void {
    const w = this.windows.get(window)
    if (!w) throw new Error(`TeacherTopK: window ${window} is not cached`)
    const V = this.vocab,
      k = this.k,
      temp = this.temperature
    const inTop = new Uint8Array(V)
    let zmax = -Infinity
    for (let j = 0; j < k; j++) {
      const v = w.ids[pos * k + j]
      inTop[v] = 1
      out[v] = w.logits[pos * k + j]
      if (out[v] > zmax) zmax = out[v]
    }
    if (k === V) return
    const logTail = w.logTail[pos]
    // log Σ_tail exp(s_v) of the student at temperature T (s = z / T), shifted by its tail max.
    let smax = -Infinity
    for (let v = 0; v < V; v++) if (!inTop[v] && student[v] / temp > smax) smax = student[v] / temp
    let sum = 0
    for (let v = 0; v < V; v++) if (!inTop[v]) sum += Math.exp(student[v] / temp - smax)
    const lseTail = smax + Math.log(sum)
    for (let v = 0; v < V; v++) {
      if (inTop[v]) continue
      out[v] = Number.isFinite(logTail) ? zmax + temp * (logTail + student[v] / temp - lseTail) : EMPTY_TAIL_LOGIT
    }
  }
}

/** Indices of the k largest values of a (largest first; ties to the lower index). */
export function topK(a: Float32Array, k: number): Int32Array {
  const n = a.length
  if (k >= n) {
    const all = Int32Array.from({ length: n }, (_, i) => i)
    return all.sort((x, y) => a[y] - a[x] || x - y)
  }
  // A min-heap of the k best so far, by (value, −index).
  const heap = new Int32Array(k)
  const worse = (x: number, y: number): boolean => a[x] < a[y] || (a[x] === a[y] && x > y)
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1
      let m = i
      if (l < k && worse(heap[l], heap[m])) m = l
      if (r < k && worse(heap[r], heap[m])) m = r
      if (m === i) return
      const t = heap[i]
      heap[i] = heap[m]
      heap[m] = t
      i = m
    }
  }
  for (let i = 0; i < k; i++) heap[i] = i
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i)
  for (let i = k; i < n; i++) {
    if (worse(heap[0], i)) {
      heap[0] = i
      siftDown(0)
    }
  }
  return heap.sort((x, y) => a[y] - a[x] || x - y)
}
