// One attention head's weights: its rows of q_proj, the rows of k_proj/v_proj of the KV head it reads
// (GQA), and its columns of o_proj, each pooled to a small grid for display. Each grid cell keeps the
// value of largest magnitude in its block, sign included, so outliers survive the down-sampling.

import type { HeadWeights } from '../../contract/api'
import { tensorName } from '../arch'
import { WhittleError } from '../errors'
import { readTensorF32 } from '../formats/read'
import type { LoadedModel } from '../model/loaded-model'

const MAX_ROWS = 64
const MAX_COLS = 256

export function poolSigned(
  src: Float32Array,
  rows: number,
  cols: number,
  maxRows = MAX_ROWS,
  maxCols = MAX_COLS,
): { rows: number; cols: number; values: number[] } {
  const gr = Math.min(rows, maxRows),
    gc = Math.min(cols, maxCols)
  const out = new Array<number>(gr * gc).fill(0)
  for (let r = 0; r < rows; r++) {
    const cr = Math.floor((r * gr) / rows)
    for (let c = 0; c < cols; c++) {
      const i = cr * gc + Math.floor((c * gc) / cols)
      const v = src[r * cols + c]
      if (Math.abs(v) > Math.abs(out[i])) out[i] = v
    }
  }
  return { rows: gr, cols: gc, values: out }
}

export async function headWeights(model: LoadedModel, layer: number, head: number): Promise<HeadWeights> {
  const a = model.arch
  if (!Number.isInteger(layer) || layer < 0 || layer >= a.layers)
    throw new WhittleError('validation', null, `layer ${layer} is outside [0, ${a.layers})`)
  if (!Number.isInteger(head) || head < 0 || head >= a.heads)
    throw new WhittleError('validation', null, `head ${head} is outside [0, ${a.heads})`)
  const hd = a.headDim
  const kvHead = Math.floor(head / (a.heads / a.kvHeads))
  const load = async (role: 'q' | 'k' | 'v' | 'o'): Promise<Float32Array> => {
    const name = tensorName(a, layer, role)
    if (!name) throw new WhittleError('not-found', model.files.path, `no ${role} weight in layer ${layer}`)
    return readTensorF32(model.entry(name))
  }
  const rowsOf = (w: Float32Array, first: number, cols: number): Float32Array =>
    w.slice(first * cols, (first + hd) * cols)
  const H = a.hiddenSize
  const q = rowsOf(await load('q'), head * hd, H)
  const k = rowsOf(await load('k'), kvHead * hd, H)
  const v = rowsOf(await load('v'), kvHead * hd, H)
  const oFull = await load('o')
  const qDim = a.heads * hd
  const o = new Float32Array(H * hd) // [H, hd]: the head's columns of o_proj
  for (let r = 0; r < H; r++) o.set(oFull.subarray(r * qDim + head * hd, r * qDim + (head + 1) * hd), r * hd)
  return {
    layer,
    head,
    headDim: hd,
    slices: [
      { role: 'q', ...poolSigned(q, hd, H), sourceShape: [hd, H] },
      { role: 'k', ...poolSigned(k, hd, H), sourceShape: [hd, H] },
      { role: 'v', ...poolSigned(v, hd, H), sourceShape: [hd, H] },
      { role: 'o', ...poolSigned(o, H, hd), sourceShape: [H, hd] },
    ],
  }
}
