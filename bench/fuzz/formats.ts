// The six fuzzed formats: which seed folder each mutates, which file(s) in it, and what the app opens.
// A mutation is a pure function of the seed bytes and the case's generator, so a case can be rebuilt
// from its index alone.

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { bloatedGguf, bloatedTokenizer, manyTensorsSafetensors } from './mutate-amplify'
import { mutateBytes } from './mutate-bytes'
import { parseGguf, mutateGguf, type ParsedGguf } from './mutate-gguf'
import { BUILTIN_NAMES, encodeJsonText, mutateJson, type JsonPath } from './mutate-json'
import { mutateSafetensors, parseSafetensors, type ParsedSafetensors } from './mutate-safetensors'
import type { Rng } from './prng'
import type { Seeds } from './seeds'

export const FORMAT_NAMES = ['safetensors', 'index', 'gguf', 'sidecars', 'gptq', 'compressed-tensors'] as const
export type FormatName = (typeof FORMAT_NAMES)[number]

export interface CaseInput {
  /** File name in the case folder → its mutated bytes (other files stay as in the seed). */
  files: Record<string, Uint8Array>
  /** What the app is asked to open, relative to the case folder ('.' is the folder itself). */
  open: string
  what: string
  /** Tensors the mutation aimed at (their packed modules are always read). */
  targets?: string[]
}

export interface Format {
  name: FormatName
  /** The seed folder, or null when it is unavailable. */
  seedDir: string | null
  /** Whether the case also builds the tokenizer and encodes a short text (the mutated files include it). */
  tokenizes: boolean
  /** Tensors to read after opening, in preference. */
  preferRead?: (name: string) => boolean
  mutate(rng: Rng): CaseInput
}

const read = (dir: string, name: string): Uint8Array => new Uint8Array(readFileSync(path.join(dir, name)))
const parseJson = (b: Uint8Array): never => JSON.parse(new TextDecoder().decode(b)) as never

/** A JSON sidecar mutated structurally most of the time, byte-wise otherwise. */
function mutateJsonFile(
  bytes: Uint8Array,
  doc: never,
  rng: Rng,
  focus?: (p: JsonPath) => boolean,
  values?: (p: JsonPath, old: unknown, rng: Rng) => unknown,
): { bytes: Uint8Array; what: string } {
  if (rng.chance(0.15)) return mutateBytes(bytes, rng, bytes.length)
  return encodeJsonText(mutateJson(doc, rng, { focus, values: values as never }), rng)
}

const TOKENIZER_TYPES = [
  'BPE',
  'WordPiece',
  'WordLevel',
  'Unigram',
  'TemplateProcessing',
  'ByteLevel',
  'BertProcessing',
  'RobertaProcessing',
  'Sequence',
  'Metaspace',
  'Split',
  'Replace',
  'Prepend',
  'Strip',
  'NFC',
  'NFKC',
  'Lowercase',
  'Whitespace',
  'Fuse',
  'ByteFallback',
  'Punctuation',
  'Digits',
  'BertPreTokenizer',
  'WhitespaceSplit',
  'CharDelimiterSplit',
  'StripAccents',
  'Precompiled',
]

function tokenizerValue(p: JsonPath, old: unknown, rng: Rng): unknown {
  const key = p[p.length - 1]
  if (key === 'type') return rng.chance(0.8) ? rng.pick(TOKENIZER_TYPES) : rng.pick(BUILTIN_NAMES)
  if (key === 'ids' || key === 'type_id' || key === 'id')
    return rng.pick([-1, 2 ** 31, 2 ** 53, 1.5, '0', null, [0], 100000])
  if (
    key === 'special_tokens' ||
    key === 'single' ||
    key === 'pair' ||
    key === 'pretokenizers' ||
    key === 'normalizers' ||
    key === 'processors'
  ) {
    return rng.pick<unknown>([
      [],
      {},
      null,
      [null],
      [{}],
      [{ type: 'constructor' }],
      { constructor: { id: 'x', ids: [0], tokens: ['x'] } },
      [{ SpecialToken: { id: '__proto__', type_id: 0 } }],
      [{ Sequence: { id: 'C', type_id: 0 } }],
    ])
  }
  if (typeof old === 'string') return rng.pick(BUILTIN_NAMES)
  return undefined
}

function configValue(p: JsonPath, old: unknown, rng: Rng): unknown {
  const key = String(p[p.length - 1])
  if (key === 'architectures' || p[0] === 'architectures')
    return rng.pick([
      ['constructor'],
      ['toString'],
      ['__proto__'],
      ['hasOwnProperty'],
      'LlamaForCausalLM',
      [],
      [null],
      ['GPT2LMHeadModel'],
      ['LlamaForCausalLM', 'OPTForCausalLM'],
    ])
  if (key === 'model_type') return rng.pick([...BUILTIN_NAMES, 'gpt2', 'opt', 'gpt_neox', 'llama', 'mistral', ''])
  if (typeof old === 'number')
    return rng.pick([
      0,
      -1,
      1,
      3,
      1e9,
      2 ** 31,
      2 ** 53,
      1e308,
      0.5,
      -0.0,
      old * 2,
      old + 1,
      old - 1,
      String(old),
      null,
    ])
  return undefined
}

function quantValue(p: JsonPath, _old: unknown, rng: Rng): unknown {
  const key = String(p[p.length - 1])
  if (key === 'bits' || key === 'num_bits')
    return rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, -4, 4.5, '4', null, 2 ** 32])
  if (key === 'group_size') return rng.pick([-1, 0, 1, 2, 3, 7, 16, 32, 33, 64, 128, 2 ** 31, 1e9, -2, 0.5, '32', null])
  if (key === 'checkpoint_format' || key === 'format')
    return rng.pick([
      'gptq',
      'gptq_v2',
      'pack-quantized',
      'naive-quantized',
      'int-quantized',
      'float-quantized',
      ...BUILTIN_NAMES,
    ])
  if (key === 'quant_method') return rng.pick(['gptq', 'compressed-tensors', 'awq', 'bitsandbytes', ...BUILTIN_NAMES])
  if (key === 'strategy') return rng.pick(['group', 'channel', 'tensor', 'block', 'token', ...BUILTIN_NAMES])
  if (key === 'type') return rng.pick(['int', 'float', ...BUILTIN_NAMES])
  if (key === 'symmetric' || key === 'sym' || key === 'desc_act' || key === 'actorder' || key === 'dynamic')
    return rng.pick([true, false, 'group', 'weight', null, 1])
  return undefined
}

function hfFolderFormat(seeds: Seeds): Format {
  const dir = seeds.hf
  const st = read(dir, 'model.safetensors')
  const parsed: ParsedSafetensors = parseSafetensors(st)
  return {
    name: 'safetensors',
    seedDir: dir,
    tokenizes: false,
    mutate(rng) {
      const m = rng.chance(0.002) ? manyTensorsSafetensors(rng) : mutateSafetensors(st, parsed, rng)
      return {
        files: { 'model.safetensors': m.bytes },
        open: rng.chance(0.5) ? '.' : 'model.safetensors',
        what: m.what,
      }
    },
  }
}

function indexFormat(seeds: Seeds): Format {
  const dir = seeds.index
  const indexBytes = read(dir, 'model.safetensors.index.json')
  const index = parseJson(indexBytes)
  const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']
  const shardBytes = shards.map((s) => read(dir, s))
  const parsed = shardBytes.map(parseSafetensors)
  const shardNames = [
    ...shards,
    '../hf/model.safetensors',
    '/etc/hostname',
    '',
    '.',
    'model.safetensors.index.json',
    'config.json',
    'missing.safetensors',
    'x/../model-00001-of-00002.safetensors',
    ...BUILTIN_NAMES,
  ]
  return {
    name: 'index',
    seedDir: dir,
    tokenizes: false,
    mutate(rng) {
      const open = rng.chance(0.5) ? '.' : 'model.safetensors.index.json'
      if (rng.chance(0.65)) {
        const m = mutateJsonFile(
          indexBytes,
          index,
          rng,
          (p) => p[0] === 'weight_map' || p[0] === 'metadata',
          (p, old, r) => (p[0] === 'weight_map' && typeof old === 'string' ? r.pick(shardNames) : undefined),
        )
        return { files: { 'model.safetensors.index.json': m.bytes }, open, what: `index: ${m.what}` }
      }
      const s = rng.int(2)
      const m = mutateSafetensors(shardBytes[s], parsed[s], rng)
      return { files: { [shards[s]]: m.bytes }, open, what: `${shards[s]}: ${m.what}` }
    },
  }
}

function ggufFormat(seeds: Seeds): Format {
  const dir = seeds.gguf
  const file = 'stories260K.gguf'
  const bytes = dir ? read(dir, file) : new Uint8Array()
  const parsed: ParsedGguf | null = dir ? parseGguf(bytes) : null
  return {
    name: 'gguf',
    seedDir: dir,
    tokenizes: true,
    mutate(rng) {
      const m = rng.chance(0.003) ? bloatedGguf(bytes, parsed!, rng) : mutateGguf(bytes, parsed!, rng)
      return { files: { [file]: m.bytes }, open: rng.chance(0.8) ? file : '.', what: m.what }
    },
  }
}

function sidecarFormat(seeds: Seeds): Format {
  const dir = seeds.hf
  const names = ['tokenizer.json', 'config.json', 'tokenizer_config.json', 'generation_config.json'] as const
  const bytes = Object.fromEntries(names.map((n) => [n, read(dir, n)])) as Record<(typeof names)[number], Uint8Array>
  const docs = Object.fromEntries(names.map((n) => [n, parseJson(bytes[n])])) as Record<(typeof names)[number], never>
  const tokenizerParts = new Set([
    'post_processor',
    'pre_tokenizer',
    'normalizer',
    'decoder',
    'added_tokens',
    'model',
    'truncation',
    'padding',
  ])
  return {
    name: 'sidecars',
    seedDir: dir,
    tokenizes: true,
    mutate(rng) {
      const file = rng.weighted({
        'tokenizer.json': 50,
        'config.json': 35,
        'tokenizer_config.json': 10,
        'generation_config.json': 5,
      })
      let m
      if (file === 'tokenizer.json' && rng.chance(0.004)) m = bloatedTokenizer(bytes[file], docs[file], rng)
      else if (file === 'tokenizer.json') {
        m = mutateJsonFile(
          bytes[file],
          docs[file],
          rng,
          (p) =>
            tokenizerParts.has(String(p[0])) &&
            !(p[0] === 'model' && (p[1] === 'vocab' || p[1] === 'merges') && p.length > 2 && rng.chance(0.7)),
          tokenizerValue,
        )
      } else if (file === 'config.json') {
        m = mutateJsonFile(bytes[file], docs[file], rng, undefined, configValue)
      } else {
        m = mutateJsonFile(bytes[file], docs[file], rng, undefined, (p, old, r) =>
          typeof old === 'string' || typeof old === 'number'
            ? r.pick([...BUILTIN_NAMES, -1, 2 ** 53, null, {}])
            : undefined,
        )
      }
      return {
        files: { [file]: m.bytes },
        open: rng.chance(0.7) ? '.' : 'model.safetensors',
        what: `${file}: ${m.what}`,
      }
    },
  }
}

function packedFormat(name: 'gptq' | 'compressed-tensors', dir: string, parts: RegExp): Format {
  const st = read(dir, 'model.safetensors')
  const parsed = parseSafetensors(st)
  const configBytes = read(dir, 'config.json')
  const config = parseJson(configBytes)
  return {
    name,
    seedDir: dir,
    tokenizes: false,
    preferRead: (n) => n.includes('.mlp.') || n.includes('.self_attn.'),
    mutate(rng): CaseInput {
      if (rng.chance(0.3)) {
        const m = mutateJsonFile(configBytes, config, rng, (p) => p[0] === 'quantization_config', quantValue)
        return { files: { 'config.json': m.bytes }, open: '.', what: `config.json: ${m.what}` }
      }
      const m = mutateSafetensors(st, parsed, rng, { tensors: (t) => parts.test(t) })
      return {
        files: { 'model.safetensors': m.bytes },
        open: '.',
        what: `model.safetensors: ${m.what}`,
        targets: m.targets,
      }
    },
  }
}

export function makeFormat(name: FormatName, seeds: Seeds): Format {
  switch (name) {
    case 'safetensors':
      return hfFolderFormat(seeds)
    case 'index':
      return indexFormat(seeds)
    case 'gguf':
      return ggufFormat(seeds)
    case 'sidecars':
      return sidecarFormat(seeds)
    case 'gptq':
      return packedFormat('gptq', seeds.gptq, /\.(qweight|qzeros|scales|g_idx)$/)
    case 'compressed-tensors':
      return packedFormat('compressed-tensors', seeds.ct, /\.weight_(packed|scale|zero_point|shape|g_idx)$/)
  }
}
