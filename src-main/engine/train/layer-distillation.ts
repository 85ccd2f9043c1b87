// Layer-wise distillation as CoFi does it (Xia et al. 2022, §3.2): besides the logits, the student's hidden
// states are pulled toward the teacher's. For each teacher block output h_t^i (here: every block's), the
// student block is chosen anew at every pass as the one whose output, mapped by one learned linear map
// W_layer (H×H, shared by all layers, initialized to the identity), is nearest:
//   m(i) = argmin_j MSE(h_s^j·W_layerᵀ, h_t^i),   L_layer = Σ_i MSE(h_s^{m(i)}·W_layerᵀ, h_t^i)
// with MSE the mean over the H dimensions, averaged over the step's predictions as the trainer's `scale`
// gives it (so micro-batches and passes add up to the step's mean, like the logit loss). The matching is
// per pass, on that pass's windows. With Y = h_s·Wᵀ and D = Y − h_t, the gradients are
//   ∂L/∂h_s = (2·scale/H)·D·W   (added to ∂L/∂(block output) before that block's backward)
//   ∂L/∂W   = (2·scale/H)·Dᵀ·h_s
// W trains with its own Adam (small-adam.ts) at the step's learning rate, updated by the caller after
// every optimizer step (update()).
//
// The teacher's block outputs are captured during its forward (captureTeacher, called by llama-trainer.ts);
// the student's are the trainer's checkpoints. Everything here is JS arithmetic: L·n·T·H² multiply-adds per
// pass for the maps (and as many for each gradient), which is milliseconds at stories260K's width (64) and
// grows with the square of the hidden size.

import { WhittleError } from '../errors'
import { SmallAdam } from './small-adam'

/** What one pass's matching chose: for each teacher layer, the student layer and its MSE. */
export interface LayerMatch {
  teacher: number
  student: number
  mse: number
}

export class LayerDistillation {
  /** W_layer [H, H] row-major: the student's state h maps to h·Wᵀ. */
  readonly W: Float32Array
  readonly gradW: Float64Array
  private readonly adam: SmallAdam
  private readonly teacher: Float32Array[] = []
  private teacherRows = 0
  /** weight·L_layer summed over the passes since the last update() (the step's mean when scale is 1/predictions). */
  private stepLoss = 0
  /** The matching of the last pass. */
  lastMatches: LayerMatch[] = []

  constructor(
    readonly hidden: number,
    /** Weight of L_layer beside the logit loss. */
    readonly weight: number,
  ) {
    if (!(weight > 0))
      throw new WhittleError('validation', null, `layer distillation needs a weight > 0 (got ${weight})`)
    this.W = new Float32Array(hidden * hidden)
    for (let i = 0; i < hidden; i++) this.W[i * hidden + i] = 1
    this.gradW = new Float64Array(hidden * hidden)
    this.adam = new SmallAdam(hidden * hidden)
  }

  /** Keeps a copy of the teacher's block `layer` output for the pass's rows ([rows, H]). */
  captureTeacher(layer: number, states: Float32Array): void {
    if (states.length % this.hidden !== 0)
      throw new WhittleError('validation', null, `layer distillation: the teacher's width is not ${this.hidden}`)
    if (layer === 0) this.teacher.length = 0
    this.teacher[layer] = Float32Array.from(states)
    this.teacherRows = states.length / this.hidden
  }

  /** h·Wᵀ for the rows of h. */
  private map(h: Float32Array, rows: number): Float32Array {
    const H = this.hidden,
      W = this.W
    const y = new Float32Array(rows * H)
    for (let r = 0; r < rows; r++) {
      const hr = r * H
      for (let o = 0; o < H; o++) {
        const wo = o * H
        let s = 0
        for (let k = 0; k < H; k++) s += h[hr + k] * W[wo + k]
        y[hr + o] = s
      }
    }
    return y
  }

  /**
   * After the student's forward over the same rows the teacher's capture holds: `outputs(j)` is student
   * block j's output [rows, H]. Returns weight·L_layer·scale summed over the rows, and per student layer
   * ∂(that)/∂(its output), or null where no teacher layer matched it; adds ∂/∂W to gradW.
   */
  studentPass(
    outputs: (layer: number) => Float32Array,
    layers: number,
    scale: number,
  ): { loss: number; grads: (Float32Array | null)[] } {
    const H = this.hidden,
      rows = this.teacherRows
    if (this.teacher.length === 0 || rows === 0)
      throw new WhittleError('validation', null, 'layer distillation needs the teacher’s hidden states of the pass')
    const states = Array.from({ length: layers }, (_, j) => {
      const h = outputs(j)
      if (h.length !== rows * H)
        throw new WhittleError(
          'validation',
          null,
          `layer distillation: student layer ${j} holds ${h.length} values, not ${rows} rows of ${H}`,
        )
      return h
    })
    const mapped = states.map((h) => this.map(h, rows))
    const grads: (Float32Array | null)[] = new Array(layers).fill(null)
    const c = (2 * this.weight * scale) / H
    let loss = 0
    this.lastMatches = []
    for (let i = 0; i < this.teacher.length; i++) {
      const t = this.teacher[i]
      let best = -1,
        bestSum = Infinity
      for (let j = 0; j < layers; j++) {
        const y = mapped[j]
        let s = 0
        for (let e = 0; e < t.length; e++) {
          const d = y[e] - t[e]
          s += d * d
        }
        if (s < bestSum) {
          bestSum = s
          best = j
        }
      }
      this.lastMatches.push({ teacher: i, student: best, mse: bestSum / (rows * H) })
      loss += (this.weight * scale * bestSum) / H
      const y = mapped[best],
        h = states[best]
      const g = (grads[best] ??= new Float32Array(rows * H))
      const dy = new Float64Array(H)
      for (let r = 0; r < rows; r++) {
        const base = r * H
        for (let o = 0; o < H; o++) dy[o] = c * (y[base + o] - t[base + o])
        for (let o = 0; o < H; o++) {
          const d = dy[o]
          if (d === 0) continue
          const wo = o * H
          for (let k = 0; k < H; k++) {
            g[base + k] += d * this.W[wo + k]
            this.gradW[wo + k] += d * h[base + k]
          }
        }
      }
    }
    this.stepLoss += loss
    return { loss, grads }
  }

  /** weight·L_layer gathered since the last call (or update), which starts the next sum. */
  takeLoss(): number {
    const loss = this.stepLoss
    this.stepLoss = 0
    return loss
  }

  /** One Adam step of W on the gradient gathered since the last update; returns the step's weighted L_layer. */
  update(lr: number): number {
    this.adam.step(this.W, this.gradW, lr)
    this.gradW.fill(0)
    return this.takeLoss()
  }
}
