// LoRA adapters alone, as PEFT saves and loads them (PeftModel.from_pretrained): a folder with
//   adapter_config.json          peft_type LORA, r, lora_alpha, lora_dropout, target_modules,
//                                base_model_name_or_path, task_type CAUSAL_LM, ...
//   adapter_model.safetensors    base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r]
// where <module> is the Hugging Face module name (model.layers.N.self_attn.q_proj). PEFT applies
// W + (lora_alpha / r)·B·A. target_modules is the list of module suffixes when every decoder layer has
// the same adapted Linears, else a regex that PEFT full-matches against module names.
//
// A base read from GGUF holds q/k rows in llama.cpp's RoPE order; B's rows go back to HF order here (A
// is untouched: the permutation acts on output rows only). The folder is written atomically and verified
// by reading it back.

import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ggufToHfRows } from '../arch/rope-permute'
import { WhittleError } from '../errors'
import { openModelFiles } from '../formats/open'
import { readTensorF32 } from '../formats/read'
import { writeSafetensors } from '../formats/safetensors-writer'
import type { LoadedModel } from '../model/loaded-model'
import type { LoraAdapterSet, LoraAdapterWeights } from '../train/lora'
import { assertFreeDestination, writeFolderAtomically } from './atomic-folder'
import { hfLlamaName } from './gguf/names'

export const PEFT_CONFIG_FILE = 'adapter_config.json'
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors'

export interface PeftAdapterExport {
  dir: string
  files: string[]
  tensors: number
  targetModules: string[] | string
}

/** The HF module name of an adapter's base Linear (model.layers.N.self_attn.q_proj). */
function hfModule(a: LoraAdapterWeights, base: LoadedModel): string {
  if (base.arch.family !== 'llama')
    throw new WhittleError(
      'unsupported',
      base.files.path,
      `PEFT adapter export supports the Llama family; this model is ${base.arch.family}`,
    )
  const name = hfLlamaName({ role: a.role, layer: a.layer, transposed: false, bias: false })
  if (!name) throw new WhittleError('unsupported', base.files.path, `no Hugging Face module name for ${a.name}`)
  return name.slice(0, -'.weight'.length)
}

/** B [rows, r] in HF row order (q/k of a GGUF base come in llama.cpp's RoPE order). */
function hfRowsOfB(a: LoraAdapterWeights, r: number, base: LoadedModel): Float32Array {
  if (base.arch.ropeLayout !== 'gguf' || (a.role !== 'q' && a.role !== 'k')) return a.B
  return ggufToHfRows(a.B, a.rows, r, a.role === 'q' ? base.arch.heads : base.arch.kvHeads)
}

/** PEFT's target_modules: module suffixes when every layer has the same set, else a full-match regex. */
export function peftTargetModules(modules: string[], layers: number): string[] | string {
  const byLayer = new Map<number, Set<string>>()
  for (const m of modules) {
    const match = /^model\.layers\.(\d+)\.\w+\.(\w+)$/.exec(m)
    if (!match) return modules.map((x) => x.replace(/\./g, '\\.')).join('|')
    const l = Number(match[1])
    if (!byLayer.has(l)) byLayer.set(l, new Set())
    byLayer.get(l)!.add(match[2])
  }
  const sets = [...byLayer.values()].map((s) => [...s].sort().join(','))
  if (byLayer.size === layers && sets.every((s) => s === sets[0])) return sets[0].split(',')
  return modules.map((x) => x.replace(/\./g, '\\.')).join('|')
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

export async function exportPeftAdapter(
  dest: string,
  set: LoraAdapterSet,
  base: LoadedModel,
  baseModelNameOrPath = base.files.path,
): Promise<PeftAdapterExport> {
  if (set.adapters.length === 0) throw new WhittleError('validation', dest, 'there are no adapters to export')
  await assertFreeDestination(dest, [base.files.path])
  const tensors = set.adapters.flatMap((a) => {
    const module = hfModule(a, base)
    return [
      { name: `base_model.model.${module}.lora_A.weight`, dtype: 'F32' as const, shape: [set.r, a.cols], values: a.A },
      {
        name: `base_model.model.${module}.lora_B.weight`,
        dtype: 'F32' as const,
        shape: [a.rows, set.r],
        values: hfRowsOfB(a, set.r, base),
      },
    ]
  })
  const modules = set.adapters.map((a) => hfModule(a, base))
  const targetModules = peftTargetModules(modules, base.arch.layers)
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModelNameOrPath,
    r: set.r,
    lora_alpha: set.alpha,
    lora_dropout: set.dropout,
    target_modules: targetModules,
    bias: 'none',
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  }
  const verify = async (dir: string): Promise<void> => {
    const back = JSON.parse(await readFile(path.join(dir, PEFT_CONFIG_FILE), 'utf8')) as typeof config
    if (back.r !== set.r || back.lora_alpha !== set.alpha || back.peft_type !== 'LORA')
      throw new WhittleError('io', dir, `${PEFT_CONFIG_FILE} did not read back as written`)
    const files = await openModelFiles(path.join(dir, PEFT_WEIGHTS_FILE))
    for (const t of tensors) {
      const e = files.tensors.find((x) => x.name === t.name)
      if (!e) throw new WhittleError('io', dir, `${PEFT_WEIGHTS_FILE} lacks ${t.name} after writing`)
      const v = await readTensorF32(e)
      for (let i = 0; i < v.length; i++) {
        if (!Object.is(v[i], t.values[i]))
          throw new WhittleError(
            'io',
            dir,
            `${PEFT_WEIGHTS_FILE}: ${t.name}[${i}] read back as ${v[i]}, written ${t.values[i]}`,
          )
      }
    }
  }
  const dir = await writeFolderAtomically(
    dest,
    async (tmp) => {
      await writeSafetensors(
        path.join(tmp, PEFT_WEIGHTS_FILE),
        tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: f32Bytes(t.values) })),
        { format: 'pt' },
      )
      await writeFile(path.join(tmp, PEFT_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n')
    },
    verify,
  )
  return { dir, files: [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE], tensors: tensors.length, targetModules }
}
