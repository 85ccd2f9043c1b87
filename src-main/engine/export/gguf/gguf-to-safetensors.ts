// GGUF Llama -> Hugging Face safetensors folder: HF names, q/k rows put back in rotate_half order, F32 /
// F16 / BF16 tensors kept bit for bit, quantized tensors dequantized to F32, and a config.json built from
// the llama.* metadata. Written into a temporary folder, verified, then renamed into place.

import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { openModelFiles } from '../../formats/open'
import { readTensorBytes, readTensorF32 } from '../../formats/read'
import { writeSafetensors } from '../../formats/safetensors-writer'
import type { DType } from '../../formats/types'
import { closeFile } from '../../io/ranged-file'
import type { LoadedModel } from '../../model/loaded-model'
import { ggufToHfRows } from '../../arch/rope-permute'
import { assertFreeDestination, writeFolderAtomically } from '../atomic-folder'
import { tokenizerFilesFor, verifyTokenizerFiles, type TokenizerFilesReport } from './hf-tokenizer-files'
import { hfLlamaName, permuteRowBytes, rowSources } from './names'

const KEPT_DTYPES = new Set<DType>(['F32', 'F16', 'BF16'])

export interface SafetensorsExportReport {
  dir: string
  tensors: { name: string; from: string; dtype: DType; dequantized: boolean }[]
  skipped: string[]
  /** tokenizer.json beside the GGUF copied, or rebuilt from tokenizer.ggml.* (or why there is none). */
  tokenizer: TokenizerFilesReport
}

interface Converted {
  name: string
  from: string
  dtype: DType
  shape: number[]
  data: Uint8Array
  dequantized: boolean
}

function hfConfig(model: LoadedModel, tied: boolean, dtype: string): Record<string, unknown> {
  const a = model.arch
  const m = model.files.metadata
  const id = (key: string): number | undefined => (typeof m[key] === 'number' ? (m[key] as number) : undefined)
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: a.hiddenSize,
    intermediate_size: a.intermediateSize,
    num_hidden_layers: a.layers,
    num_attention_heads: a.heads,
    num_key_value_heads: a.kvHeads,
    head_dim: a.headDim,
    vocab_size: a.vocabSize,
    max_position_embeddings: a.maxPositions ?? id('llama.context_length') ?? 2048,
    rms_norm_eps: a.normEps ?? 1e-5,
    rope_theta: a.ropeTheta ?? 10000,
    hidden_act: 'silu',
    tie_word_embeddings: tied,
    bos_token_id: id('tokenizer.ggml.bos_token_id'),
    eos_token_id: id('tokenizer.ggml.eos_token_id'),
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: dtype,
  }
}

async function convertTensors(model: LoadedModel): Promise<{ converted: Converted[]; skipped: string[] }> {
  const permute = model.arch.ropeLayout === 'gguf'
  const converted: Converted[] = []
  const skipped: string[] = []
  for (const t of model.files.tensors) {
    const place = model.arch.places[t.name]
    const name = place ? hfLlamaName(place) : null
    if (!place || !name) {
      skipped.push(t.name)
      continue
    }
    const entry = model.entry(t.name)
    const cols = entry.shape[entry.shape.length - 1] ?? 1
    const rows = entry.shape.slice(0, -1).reduce((x, y) => x * y, 1)
    const heads = !permute ? 0 : place.role === 'q' ? model.arch.heads : place.role === 'k' ? model.arch.kvHeads : 0
    if (KEPT_DTYPES.has(entry.dtype)) {
      let data = await readTensorBytes(entry, 0, entry.byteLength)
      if (heads > 0) data = permuteRowBytes(data, rowSources(rows, heads, ggufToHfRows))
      converted.push({ name, from: t.name, dtype: entry.dtype, shape: entry.shape, data, dequantized: false })
    } else {
      let w = await readTensorF32(entry)
      if (heads > 0) w = ggufToHfRows(w, rows, cols, heads)
      converted.push({
        name,
        from: t.name,
        dtype: 'F32',
        shape: entry.shape,
        data: new Uint8Array(w.buffer, w.byteOffset, w.byteLength),
        dequantized: true,
      })
    }
  }
  return { converted, skipped }
}

async function verifyFolder(dir: string, converted: Converted[]): Promise<void> {
  const file = path.join(dir, 'model.safetensors')
  try {
    const reopened = await openModelFiles(file)
    const byName = new Map(reopened.tensors.map((t) => [t.name, t]))
    for (const want of converted) {
      const got = byName.get(want.name)
      if (!got || got.dtype !== want.dtype || got.shape.join(',') !== want.shape.join(',')) {
        throw new WhittleError('format', dir, `verification failed: tensor ${want.name} was not written as expected`)
      }
      const bytes = await readTensorBytes(got, 0, got.byteLength)
      if (
        Buffer.compare(
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length),
          Buffer.from(want.data.buffer, want.data.byteOffset, want.data.length),
        ) !== 0
      ) {
        throw new WhittleError('format', dir, `verification failed: tensor ${want.name} differs after writing`)
      }
    }
  } finally {
    closeFile(file) // the folder is about to be renamed; drop the cached handle
  }
}

/** Writes `outDir` (a new folder) holding model.safetensors, config.json and the tokenizer files. */
export async function exportSafetensorsFromGguf(model: LoadedModel, outDir: string): Promise<SafetensorsExportReport> {
  if (model.files.format !== 'gguf')
    throw new WhittleError(
      'unsupported',
      model.files.path,
      'this conversion reads a GGUF file; the source is already safetensors',
    )
  if (model.arch.family !== 'llama' || model.arch.declared !== 'llama') {
    throw new WhittleError(
      'unsupported',
      model.files.path,
      `GGUF -> safetensors supports general.architecture 'llama', not '${model.arch.declared}'`,
    )
  }
  await assertFreeDestination(outDir, [model.files.path, ...model.files.files])
  const { converted, skipped } = await convertTensors(model)
  const tied = !converted.some((c) => c.name === 'lm_head.weight')
  const dtypes = new Set(converted.filter((c) => c.shape.length >= 2).map((c) => c.dtype))
  const torchDtype =
    dtypes.size === 1 && dtypes.has('F16')
      ? 'float16'
      : dtypes.size === 1 && dtypes.has('BF16')
        ? 'bfloat16'
        : 'float32'
  const contextLength =
    model.arch.maxPositions ??
    (typeof model.files.metadata['llama.context_length'] === 'number'
      ? (model.files.metadata['llama.context_length'] as number)
      : null)
  const tokenizer = await tokenizerFilesFor(model.files, contextLength)
  const dir = await writeFolderAtomically(
    outDir,
    async (tmp) => {
      await writeSafetensors(
        path.join(tmp, 'model.safetensors'),
        converted.map((c) => ({ name: c.name, dtype: c.dtype, shape: c.shape, data: c.data })),
        { format: 'pt', producer: 'whittle' },
      )
      await writeFile(path.join(tmp, 'config.json'), JSON.stringify(hfConfig(model, tied, torchDtype), null, 2) + '\n')
      for (const f of tokenizer.contents) await writeFile(path.join(tmp, f.name), f.data)
    },
    async (tmp) => {
      await verifyFolder(tmp, converted)
      await verifyTokenizerFiles(tmp, tokenizer)
    },
  )
  return {
    dir,
    tensors: converted.map((c) => ({ name: c.name, from: c.from, dtype: c.dtype, dequantized: c.dequantized })),
    skipped,
    tokenizer: tokenizer.report,
  }
}
