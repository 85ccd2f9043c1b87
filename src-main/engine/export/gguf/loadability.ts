// Whether llama.cpp would load a GGUF file: the rules its loader applies beyond what Whittle's own
// reader (formats/gguf.ts) already refuses. Learned from llama.cpp's ggml/src/gguf.cpp
// (gguf_init_from_file_impl), src/llama-model-loader.cpp and src/llama-vocab.cpp:
// - general.alignment, when present, is a u32 power of two; the data section starts on it;
// - tensor infos: names shorter than GGML_MAX_NAME (64 bytes), 1 to 4 dims, rows a whole number of the
//   type's blocks, and offsets exactly where gguf.cpp expects them: each tensor starts where the previous
//   one's bytes, padded to the alignment, end (the first at 0), so data is in order, aligned and packed;
// - every tensor's bytes lie within the file (llama-model-loader: "data is not within the file bounds");
// - general.file_type, when present (llama.cpp guesses it otherwise), is a u32, a known LLAMA_FTYPE, and
//   agrees with the tensors' types; a file with block-quantized
//   tensors carries general.quantization_version = 2 (GGML_QNT_VERSION);
// - the tokenizer, unless the file has none at all (weights only, like its source): tokenizer.ggml.model and
//   .tokens present; .scores and .token_type, when present, hold
//   one entry per token; a gpt2 (BPE) tokenizer has merges, each "left right"; special token ids lie in
//   the vocabulary (llama.cpp only warns and substitutes its default; Whittle refuses to write that); token_embd.weight and output.weight have one row per token (check_tensor_dims), and
//   llama.vocab_size / llama.embedding_length / llama.block_count agree with the tensors.
// Each problem is named by its rule, so callers and tests tell them apart without reading messages.

import { WhittleError } from '../../errors'
import { readGgufArray, type GgufFile } from '../../formats/gguf'
import { ggmlTypeById } from '../../formats/ggml-types'
import { LLAMA_FILE_TYPE } from './type-policy'

/** GGML_MAX_NAME: a tensor name must fit in 63 bytes and a NUL. */
export const GGML_MAX_NAME = 64
/** GGML_QNT_VERSION, which llama-quantize writes as general.quantization_version. */
export const GGML_QNT_VERSION = 2

export type LoadabilityRule =
  | 'alignment'
  | 'tensor-info'
  | 'tensor-offset'
  | 'tensor-bounds'
  | 'file-type'
  | 'quantization-version'
  | 'tokenizer'
  | 'hparams'

export interface LoadabilityProblem {
  rule: LoadabilityRule
  problem: string
}

/** LLAMA_TOKEN_NULL as a u32: "no such special token". */
const NO_TOKEN = 0xffffffff
const UNQUANTIZED = new Set(['F32', 'F16', 'BF16', 'F64', 'I8', 'I16', 'I32', 'I64'])
const KNOWN_FILE_TYPES = new Set(Object.values(LLAMA_FILE_TYPE))

function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment
}

function u32Key(g: GgufFile, key: string): number | null | 'wrong-type' {
  if (!Object.hasOwn(g.kvTypes, key)) return null
  if (g.kvTypes[key] !== 'u32') return 'wrong-type'
  const v = g.metadata[key]
  return typeof v === 'number' ? v : 'wrong-type'
}

function layoutProblems(g: GgufFile): LoadabilityProblem[] {
  const out: LoadabilityProblem[] = []
  const add = (rule: LoadabilityRule, problem: string): void => void out.push({ rule, problem })
  if (Object.hasOwn(g.kvTypes, 'general.alignment') && g.kvTypes['general.alignment'] !== 'u32')
    add('alignment', `general.alignment is a ${g.kvTypes['general.alignment']}; llama.cpp requires a u32`)
  if (g.dataStart % g.alignment !== 0)
    add('alignment', `the data section starts at ${g.dataStart}, not a multiple of the alignment ${g.alignment}`)
  let expected = 0
  for (const [i, info] of g.infos.entries()) {
    const entry = g.tensors[i]
    const nameBytes = Buffer.byteLength(info.name, 'utf8')
    if (nameBytes >= GGML_MAX_NAME)
      add('tensor-info', `tensor "${info.name}" has a ${nameBytes}-byte name (llama.cpp allows ${GGML_MAX_NAME - 1})`)
    if (info.dims.length < 1 || info.dims.length > 4)
      add('tensor-info', `tensor "${info.name}" has ${info.dims.length} dimensions (1 to 4)`)
    const type = ggmlTypeById(info.ggmlType)
    if (!type) {
      add('tensor-info', `tensor "${info.name}" has unknown ggml type ${info.ggmlType}`)
      continue
    }
    if ((info.dims[0] ?? 0) % type.blockElements !== 0)
      add(
        'tensor-info',
        `tensor "${info.name}" has rows of ${info.dims[0]} elements, not a whole number of ${type.name}'s ${type.blockElements}-element blocks`,
      )
    if (info.relativeOffset !== expected && !out.some((p) => p.rule === 'tensor-offset'))
      add(
        'tensor-offset',
        `tensor "${info.name}" has offset ${info.relativeOffset}; llama.cpp expects ${expected} (the previous tensors' bytes, each padded to ${g.alignment})`,
      )
    const end = entry.offset + entry.byteLength
    if (end > g.size)
      add('tensor-bounds', `tensor "${info.name}" ends at byte ${end}, past the end of the ${g.size}-byte file`)
    expected += padTo(entry.byteLength, g.alignment)
  }
  return out
}

function fileTypeProblems(g: GgufFile): LoadabilityProblem[] {
  const out: LoadabilityProblem[] = []
  const types = g.infos.map((i) => ggmlTypeById(i.ggmlType)?.name ?? String(i.ggmlType))
  const quantized = types.filter((t) => !UNQUANTIZED.has(t))
  const fileType = u32Key(g, 'general.file_type')
  // Missing, llama.cpp guesses it from the most common tensor type; present, it must be a u32 (get_key).
  if (fileType === 'wrong-type') out.push({ rule: 'file-type', problem: 'general.file_type is not a u32' })
  else if (fileType === null) return out.concat(versionProblems(g, quantized.length))
  else if (!KNOWN_FILE_TYPES.has(fileType))
    out.push({ rule: 'file-type', problem: `general.file_type ${fileType} is not a llama.cpp file type` })
  else {
    const allowed =
      fileType === LLAMA_FILE_TYPE.F32
        ? ['F32']
        : fileType === LLAMA_FILE_TYPE.F16
          ? ['F32', 'F16']
          : fileType === LLAMA_FILE_TYPE.BF16
            ? ['F32', 'BF16']
            : null
    const stray = allowed ? types.filter((t) => !allowed.includes(t)) : []
    if (allowed && stray.length > 0)
      out.push({
        rule: 'file-type',
        problem: `general.file_type ${fileType} says ${allowed.join('/')} tensors, but some are ${[...new Set(stray)].join(', ')}`,
      })
    if (!allowed && quantized.length === 0)
      out.push({
        rule: 'file-type',
        problem: `general.file_type ${fileType} is a quantized type, but no tensor is block-quantized`,
      })
  }
  return out.concat(versionProblems(g, quantized.length))
}

function versionProblems(g: GgufFile, quantized: number): LoadabilityProblem[] {
  const version = u32Key(g, 'general.quantization_version')
  if (quantized === 0 || version === GGML_QNT_VERSION) return []
  return [
    {
      rule: 'quantization-version',
      problem:
        version === null
          ? `general.quantization_version is missing from a file with ${quantized} block-quantized tensors`
          : `general.quantization_version is ${String(version)}, expected the u32 ${GGML_QNT_VERSION}`,
    },
  ]
}

function rowsOf(g: GgufFile, name: string): { cols: number; rows: number } | null {
  const info = g.infos.find((i) => i.name === name)
  return info ? { cols: info.dims[0], rows: info.dims.slice(1).reduce((a, b) => a * b, 1) } : null
}

async function tokenizerProblems(g: GgufFile): Promise<LoadabilityProblem[]> {
  // A weights-only file (no tokenizer.ggml.* key at all), as llama-quantize writes from a weights-only
  // source: llama.cpp needs a vocabulary to run it, but the file is what its source was; nothing to check.
  if (!Object.keys(g.kvTypes).some((k) => k.startsWith('tokenizer.ggml.'))) return []
  const out: LoadabilityProblem[] = []
  const add = (problem: string): void => void out.push({ rule: 'tokenizer', problem })
  const model = g.metadata['tokenizer.ggml.model']
  if (typeof model !== 'string') add('tokenizer.ggml.model is missing')
  if (g.kvTypes['tokenizer.ggml.tokens'] !== 'array') {
    add('tokenizer.ggml.tokens is missing')
    return out
  }
  const nVocab = g.arrays['tokenizer.ggml.tokens']?.length ?? 0
  if (nVocab === 0) add('tokenizer.ggml.tokens is empty')
  // llama-vocab.cpp reads scores[i] as f32 and token_type[i] as i32 for every token i, unchecked: a short
  // or differently typed array is read past its end or misread rather than refused.
  for (const [key, itemType] of [
    ['tokenizer.ggml.scores', 'f32'],
    ['tokenizer.ggml.token_type', 'i32'],
  ] as const) {
    if (!Object.hasOwn(g.kvTypes, key)) continue
    const array = g.arrays[key]
    if (array?.length !== nVocab) add(`${key} has ${array?.length ?? 'no'} entries for ${nVocab} tokens`)
    else if (array.itemType !== itemType) add(`${key} holds ${array.itemType} items; llama.cpp reads ${itemType}`)
  }
  if (model === 'gpt2') {
    if (g.kvTypes['tokenizer.ggml.merges'] !== 'array') add('a gpt2 tokenizer has no tokenizer.ggml.merges')
    else {
      const merges = (await readGgufArray(g.path, 'tokenizer.ggml.merges', g)) as ArrayLike<unknown>
      for (let i = 0; i < merges.length; i++) {
        const m = merges[i]
        const space = typeof m === 'string' ? m.indexOf(' ', 1) : -1
        if (typeof m !== 'string' || space < 1 || space === m.length - 1) {
          add(`tokenizer.ggml.merges[${i}] is not "left right"`)
          break
        }
      }
    }
  }
  for (const key of Object.keys(g.kvTypes).filter((k) => /^tokenizer\.ggml\.\w+_token_id$/.test(k))) {
    const id = g.metadata[key]
    // llama.cpp replaces an id outside the vocabulary by its default with only a warning; converters write
    // 0xFFFFFFFF (-1) on purpose for "none". Any other stray id means the export wrote a wrong token.
    if (typeof id === 'number' && id !== NO_TOKEN && (id < 0 || id >= nVocab))
      add(`${key} ${id} is outside the ${nVocab}-token vocabulary`)
  }
  for (const name of ['token_embd.weight', 'output.weight']) {
    const t = rowsOf(g, name)
    if (t && t.rows !== nVocab) add(`${name} has ${t.rows} rows for ${nVocab} tokens`)
  }
  return out
}

function hparamProblems(g: GgufFile): LoadabilityProblem[] {
  const arch = g.metadata['general.architecture']
  if (typeof arch !== 'string') return [{ rule: 'hparams', problem: 'general.architecture is missing' }]
  const out: LoadabilityProblem[] = []
  const nVocab = g.arrays['tokenizer.ggml.tokens']?.length
  const vocabSize = g.metadata[`${arch}.vocab_size`]
  if (typeof vocabSize === 'number' && nVocab !== undefined && vocabSize !== nVocab)
    out.push({ rule: 'hparams', problem: `${arch}.vocab_size is ${vocabSize}, but the tokenizer has ${nVocab} tokens` })
  const embd = rowsOf(g, 'token_embd.weight')
  const width = g.metadata[`${arch}.embedding_length`]
  if (embd && width !== embd.cols)
    out.push({
      rule: 'hparams',
      problem: `${arch}.embedding_length is ${String(width)}, but token_embd.weight rows hold ${embd.cols}`,
    })
  const blocks = new Set(g.infos.map((i) => /^blk\.(\d+)\./.exec(i.name)?.[1]).filter((b) => b !== undefined))
  const count = g.metadata[`${arch}.block_count`]
  if (count !== blocks.size)
    out.push({
      rule: 'hparams',
      problem: `${arch}.block_count is ${String(count)}, but the tensors fill ${blocks.size} blocks`,
    })
  return out
}

/** Every rule llama.cpp's loader would trip on in `g` (a model file: a tokenizer and Llama hyperparameters). */
export async function ggufLoadabilityProblems(g: GgufFile): Promise<LoadabilityProblem[]> {
  return [...layoutProblems(g), ...fileTypeProblems(g), ...(await tokenizerProblems(g)), ...hparamProblems(g)]
}

/** Throws a 'format' WhittleError naming `shownAs` and every problem when llama.cpp would not load `g`. */
export async function checkGgufLoadability(g: GgufFile, shownAs: string = g.path): Promise<void> {
  const problems = await ggufLoadabilityProblems(g)
  if (problems.length === 0) return
  throw new GgufNotLoadableError(shownAs, problems)
}

/** A 'format' error that keeps the rules broken, so callers and tests need not read the message. */
export class GgufNotLoadableError extends WhittleError {
  readonly problems: readonly LoadabilityProblem[]
  constructor(file: string, problems: readonly LoadabilityProblem[]) {
    super(
      'format',
      file,
      `llama.cpp would not load this file: ${problems.map((p) => `${p.problem} [${p.rule}]`).join('; ')}`,
    )
    this.problems = problems
  }
}
