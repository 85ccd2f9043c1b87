// An importance matrix file as the app shows it: per entry, its input channels' mean x² (Σx² / count, what
// llama-quantize weighs each column by), placed by its GGUF name at a decoder block, role and activation
// input group, and, given the open model, at that model's Linear. This is the same per-channel profile an
// activation capture records for that input (ActivationInput.meanSq), which is how the two views link.

import type { ImatrixProfile, ImatrixTensorProfile, InputGroup, TensorRole } from '../../contract/api'
import { tensorName } from '../arch'
import { placeGgufTensor } from '../arch/gguf-llama'
import type { ModelArchitecture } from '../arch/types'
import type { Imatrix, ImatrixEntry } from '../formats/imatrix-data'
import { readImatrixFile, type ImatrixFormat } from '../formats/imatrix-file'
import { INPUT_GROUP } from '../forward/causal-lm'
import type { LinearRole } from '../forward/causal-lm'

/** The order of a block's Linears in the profile. */
const ROLE_ORDER: readonly TensorRole[] = ['q', 'k', 'v', 'qkv', 'o', 'gate', 'up', 'fc1', 'down', 'fc2']

/** What the model needs to offer for the entries to be placed on its Linears. */
export interface ProfileModel {
  arch: ModelArchitecture
  /** [rows, cols] of a tensor of the model. */
  shape(name: string): readonly number[]
}

function inputGroup(role: TensorRole): InputGroup | null {
  return Object.hasOwn(INPUT_GROUP, role) ? INPUT_GROUP[role as LinearRole] : null
}

/** Σx² / count per column, averaged over the entry's matrices (one for a dense weight). */
function meanSquares(e: ImatrixEntry): { meanSq: number[]; count: number } {
  const matrices = e.sums.length / e.columns
  const meanSq = new Array<number>(e.columns).fill(0)
  let total = 0
  for (let m = 0; m < matrices; m++) {
    // A .dat holds one count for all of an entry's matrices.
    const count = e.counts[Math.min(m, e.counts.length - 1)]
    total += count
    for (let c = 0; c < e.columns; c++) meanSq[c] += (count > 0 ? e.sums[m * e.columns + c] / count : 0) / matrices
  }
  return { meanSq, count: e.counts.length === 1 ? e.counts[0] : total }
}

function placeOnModel(
  entry: Omit<ImatrixTensorProfile, 'tensor' | 'note'>,
  model: ProfileModel | null,
): Pick<ImatrixTensorProfile, 'tensor' | 'note'> {
  if (!model) return { tensor: null }
  if (entry.layer === null || entry.role === null)
    return { tensor: null, note: 'not a decoder block weight of this model' }
  const name = tensorName(model.arch, entry.layer, entry.role)
  if (!name) return { tensor: null, note: `the model has no ${entry.role} weight in layer ${entry.layer}` }
  const shape = model.shape(name)
  const cols = shape[shape.length - 1]
  if (cols !== entry.meanSq.length)
    return { tensor: null, note: `${name} has ${cols} input channels, the entry ${entry.meanSq.length}` }
  return { tensor: name }
}

/** The profile of an imatrix already read. */
export function imatrixProfile(
  file: string,
  format: ImatrixFormat,
  imatrix: Imatrix,
  model: ProfileModel | null,
): ImatrixProfile {
  // ffn_up is `up` in a gated MLP and `fc1` in a plain one; without a model, llama.cpp's imatrix is a gated Llama's.
  const gated = model ? Object.values(model.arch.places).some((p) => p.role === 'gate') : true
  const tensors: ImatrixTensorProfile[] = []
  for (const [name, e] of imatrix.entries) {
    const place = placeGgufTensor(name, gated)
    const role = place.role === 'other' ? null : place.role
    const entry = {
      name,
      layer: place.layer,
      role,
      group: role ? inputGroup(role) : null,
      ...meanSquares(e),
    }
    tensors.push({ ...entry, ...placeOnModel(entry, model) })
  }
  const rank = (t: ImatrixTensorProfile): number => {
    const r = t.role === null ? -1 : ROLE_ORDER.indexOf(t.role)
    return (t.layer ?? 1e6) * 100 + (r < 0 ? 99 : r)
  }
  tensors.sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return {
    path: file,
    format,
    chunkCount: imatrix.chunkCount,
    chunkSize: imatrix.chunkSize,
    datasets: imatrix.datasets,
    tensors,
  }
}

/** Reads an imatrix file (GGUF or .dat; the readers name the file in any error) and profiles it. */
export async function readImatrixProfile(file: string, model: ProfileModel | null): Promise<ImatrixProfile> {
  const { imatrix, format } = await readImatrixFile(file)
  return imatrixProfile(file, format, imatrix, model)
}
