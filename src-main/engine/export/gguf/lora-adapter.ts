// LoRA adapters alone as a GGUF file that llama.cpp's --lora loads (what its convert_lora_to_gguf.py
// writes): general.architecture of the base, general.type = adapter, adapter.type = lora,
// adapter.lora.alpha, and per adapted Linear two F32 tensors named after the base weight:
//   blk.N.attn_q.weight.lora_a   A [r, in]   (ggml dims [in, r])
//   blk.N.attn_q.weight.lora_b   B [out, r]  (ggml dims [r, out])
// llama.cpp checks a.ne[0] = W.ne[0] (in), b.ne[1] = W.ne[1] (out), a.ne[1] = b.ne[0] (r), and applies
// W + (alpha / r)·B·A with r read from the tensors. For a Hugging Face base, llama.cpp's converter
// permutes the rows of q and k into its RoPE order; an adapter must follow the base, and since the
// permutation acts on output rows, P·(W + s·B·A) = P·W + s·(P·B)·A: B's rows are permuted, A is not.
// Written atomically and verified by reading the file back.

import { hfToGgufRows } from '../../arch/rope-permute'
import { WhittleError } from '../../errors'
import { openModelFiles } from '../../formats/open'
import { readTensorF32 } from '../../formats/read'
import { writeGguf, type GgufKv, type GgufTensorInput } from '../../formats/gguf-writer'
import type { LoadedModel } from '../../model/loaded-model'
import type { LoraAdapterSet, LoraAdapterWeights } from '../../train/lora'
import { checkLlamaSource } from './llama-source'
import { ggufLlamaName } from './names'

export interface GgufLoraExport {
  file: string
  bytes: number
  tensors: number
}

/** B in the base GGUF's row order (q/k rows of an HF base permuted as llama.cpp's converter does). */
function ggufRowsOfB(a: LoraAdapterWeights, r: number, base: LoadedModel, permuteQk: boolean): Float32Array {
  if (!permuteQk || (a.role !== 'q' && a.role !== 'k')) return a.B
  return hfToGgufRows(a.B, a.rows, r, a.role === 'q' ? base.arch.heads : base.arch.kvHeads)
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

export async function exportGgufLoraAdapter(
  file: string,
  set: LoraAdapterSet,
  base: LoadedModel,
  name?: string,
): Promise<GgufLoraExport> {
  if (set.adapters.length === 0) throw new WhittleError('validation', file, 'there are no adapters to export')
  const { permuteQk } = checkLlamaSource(base)
  const planned: { name: string; dims: number[]; values: Float32Array }[] = []
  for (const a of set.adapters) {
    const weight = ggufLlamaName({ role: a.role, layer: a.layer, transposed: false, bias: false })
    if (!weight) throw new WhittleError('unsupported', base.files.path, `no GGUF name for ${a.name}`)
    planned.push({ name: `${weight}.lora_a`, dims: [a.cols, set.r], values: a.A })
    planned.push({ name: `${weight}.lora_b`, dims: [set.r, a.rows], values: ggufRowsOfB(a, set.r, base, permuteQk) })
  }
  const kv: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.type', type: 'string', value: 'adapter' },
    ...(name ? [{ key: 'general.name', type: 'string' as const, value: name }] : []),
    { key: 'adapter.type', type: 'string', value: 'lora' },
    { key: 'adapter.lora.alpha', type: 'f32', value: set.alpha },
  ]
  const tensors: GgufTensorInput[] = planned.map((p) => ({
    name: p.name,
    type: 'F32',
    dims: p.dims,
    data: f32Bytes(p.values),
  }))
  const verify = async (temp: string): Promise<void> => {
    const back = await openModelFiles(temp)
    const md = back.metadata
    if (
      md['general.type'] !== 'adapter' ||
      md['adapter.type'] !== 'lora' ||
      md['adapter.lora.alpha'] !== Math.fround(set.alpha)
    ) {
      throw new WhittleError('io', file, 'the adapter metadata did not read back as written')
    }
    for (const p of planned) {
      const e = back.tensors.find((t) => t.name === p.name)
      if (!e) throw new WhittleError('io', file, `${p.name} is missing after writing`)
      const v = await readTensorF32(e)
      for (let i = 0; i < v.length; i++)
        if (!Object.is(v[i], p.values[i]))
          throw new WhittleError('io', file, `${p.name}[${i}] read back as ${v[i]}, written ${p.values[i]}`)
    }
  }
  const bytes = await writeGguf(file, { kv, tensors }, { exclusive: true, verify })
  return { file, bytes, tensors: tensors.length }
}
