// The GGUF's own tokenizer on small hand-built vocabularies, whose expected ids are worked out by hand in
// the comments, plus the errors for what it does not cover.

import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tokenizeForEval } from '../eval/tokenize-text'
import { ggufTokenizerOf, tokenizerSourceOf } from './model-tokenizer'
import { loadGgufTokenizer, readGgufVocab } from './gguf-tokenizer'
import { preTokenizerFor, splitWords } from './gguf-tokenizer-bpe'
import { writeGguf, type GgufKv } from './gguf-writer'
import { openModelFiles } from './open'
import { expectWhittleError, tempFolder } from './testing/temp-files-and-errors'

const tmp = tempFolder('whittle-gguf-tok-')
afterAll(() => tmp.cleanup())
let serial = 0

async function ggufWith(kv: GgufKv[]): Promise<string> {
  const file = join(tmp.dir, `tok-${serial++}.gguf`)
  await writeGguf(file, { kv: [{ key: 'general.architecture', type: 'string', value: 'llama' }, ...kv], tensors: [] })
  return file
}

const hex = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`

/** A SentencePiece-style vocabulary: <unk> <s> </s>, optionally the 256 byte tokens (ids 3..258), then pieces. */
function spmKvs(pieces: [string, number][], opts: { bytes?: boolean; extra?: GgufKv[] } = {}): GgufKv[] {
  const tokens = ['<unk>', '<s>', '</s>']
  const scores = [0, 0, 0]
  const types = [2, 3, 3]
  if (opts.bytes ?? true)
    for (let b = 0; b < 256; b++) {
      tokens.push(hex(b))
      scores.push(0)
      types.push(6)
    }
  for (const [t, s] of pieces) {
    tokens.push(t)
    scores.push(s)
    types.push(1)
  }
  return [
    { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens },
    { key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: scores },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: types },
    ...(opts.extra ?? []),
  ]
}

describe("tokenizer.ggml.model = 'llama' (SentencePiece-style)", () => {
  // ids: ▁ 259, a 260, b 261, ▁a 262 (score -5), ab 263 (score -1).
  const pieces: [string, number][] = [
    ['▁', 0],
    ['a', 0],
    ['b', 0],
    ['▁a', -5],
    ['ab', -1],
  ]

  it('merges the best-scoring pair first, then falls back to bytes', async () => {
    const t = await loadGgufTokenizer(await ggufWith(spmKvs(pieces)))
    // "ab é" → "▁ab▁é". Candidates ▁a (-5) and ab (-1): ab wins although ▁a is further left; ▁+ab is no
    // token, so [▁, ab]. Then ▁, and é (U+00E9, UTF-8 C3 A9) has no piece: bytes <0xC3> <0xA9> = 3+0xC3, 3+0xA9.
    expect(t.encode('ab é')).toEqual([259, 263, 259, 3 + 0xc3, 3 + 0xa9])
    // add_bos_token defaults to true for 'llama', add_eos_token to false.
    expect(t.encode('ab é', { addSpecialTokens: true })).toEqual([1, 259, 263, 259, 3 + 0xc3, 3 + 0xa9])
    // Control tokens written in the text are tokens; the leading ▁ is added again after one.
    expect(t.encode('a</s>a')).toEqual([262, 2, 262])
    expect(t.encode('a</s>a', { parseSpecial: false })).toEqual([262, 3 + 0x3c, 3 + 0x2f, 3 + 0x73, 3 + 0x3e, 260])
    expect(t.encode('')).toEqual([])
  })

  it('honours add_space_prefix, add_bos_token and add_eos_token from the file', async () => {
    const t = await loadGgufTokenizer(
      await ggufWith(
        spmKvs(pieces, {
          extra: [
            { key: 'tokenizer.ggml.add_space_prefix', type: 'bool', value: false },
            { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: false },
            { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: true },
          ],
        }),
      ),
    )
    // "ab é" → "ab▁é": [ab, ▁, <0xC3>, <0xA9>], then EOS (default id 2).
    expect(t.encode('ab é', { addSpecialTokens: true })).toEqual([263, 259, 3 + 0xc3, 3 + 0xa9, 2])
  })

  it('uses <unk> when a character has no piece and no byte tokens', async () => {
    // Without byte tokens: ▁ 3, a 4, b 5, ▁a 6, ab 7.
    const t = await loadGgufTokenizer(await ggufWith(spmKvs(pieces, { bytes: false })))
    expect(t.encode('a é')).toEqual([6, 3, 0])
    // An unknown_token_id outside the vocabulary is ignored, as llama.cpp does: <unk> keeps its default id 0.
    const outside = await ggufWith(
      spmKvs(pieces, {
        bytes: false,
        extra: [{ key: 'tokenizer.ggml.unknown_token_id', type: 'u32', value: 0xffffffff }],
      }),
    )
    expect((await loadGgufTokenizer(outside)).encode('é')).toEqual([3, 0])
  })

  it('reads special ids, ignoring ones outside the vocabulary', async () => {
    const file = await ggufWith(
      spmKvs(pieces, {
        extra: [
          { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: 2 },
          { key: 'tokenizer.ggml.padding_token_id', type: 'u32', value: 0xffffffff },
        ],
      }),
    )
    const v = await readGgufVocab(file)
    expect([v.bosId, v.eosId, v.unkId, v.padId]).toEqual([2, 2, 0, null])
  })
})

/** A byte-level vocabulary (Ġ is the space byte) with merges in rank order. */
function gpt2Kvs(pre: string | null, extraTokens: string[] = []): GgufKv[] {
  const tokens = [
    'h',
    'e',
    'l',
    'o',
    'Ġ',
    'w',
    'r',
    'd',
    'he',
    'll',
    'llo',
    'hello',
    'Ġw',
    'or',
    'Ġwor',
    '!',
    '<|endoftext|>',
    'ld',
    'Ġwo',
    ...extraTokens,
  ]
  const types = tokens.map((t) => (t === '<|endoftext|>' ? 3 : 1))
  const merges = ['h e', 'l l', 'll o', 'he llo', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġw o']
  return [
    { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' },
    ...(pre === null ? [] : [{ key: 'tokenizer.ggml.pre', type: 'string', value: pre } as GgufKv]),
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: types },
    { key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: merges },
    { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: 16 },
  ]
}

describe("tokenizer.ggml.model = 'gpt2' (byte-level BPE)", () => {
  it('merges by rank, not by position', async () => {
    const t = await loadGgufTokenizer(await ggufWith(gpt2Kvs('gpt-2')))
    // Words: "hello", " world", "!".
    // hello: h+e (rank 0) → he; l+l (1) → ll; ll+o (2) → llo; he+llo (3) → hello = 11.
    // Ġworld: Ġ+w (4) → Ġw; now o+r (5) beats Ġw+o (8) → or; Ġw+or (6) → Ġwor; l+d (7) → ld;
    // Ġw+o is stale. So [Ġwor 14, ld 17], then ! 15.
    expect(t.encode('hello world!')).toEqual([11, 14, 17, 15])
    expect(t.encode('hello<|endoftext|>')).toEqual([11, 16])
    // gpt-2's family adds no BOS unless the file asks.
    expect(t.encode('hello', { addSpecialTokens: true })).toEqual([11])
  })

  it("llama3's pre-tokenizer takes a word that is a token whole and adds BOS", async () => {
    // Ġworld (id 19) is a token no merge produces.
    const llama3 = await loadGgufTokenizer(await ggufWith(gpt2Kvs('llama-bpe', ['Ġworld'])))
    expect(llama3.encode('hello world', { addSpecialTokens: true })).toEqual([16, 11, 19])
    const gpt2 = await loadGgufTokenizer(await ggufWith(gpt2Kvs('gpt-2', ['Ġworld'])))
    expect(gpt2.encode('hello world')).toEqual([11, 14, 17])
  })

  it('splits words as each pre-tokenizer family says', () => {
    const split = (pre: string | null, text: string): string[] =>
      splitWords(
        text,
        preTokenizerFor(pre)!.patterns.map((p) => new RegExp(p, 'gu')),
      )
    // GPT-2 keeps digit runs whole; llama3 cuts them in threes; llama.cpp's default cuts out triples too.
    expect(split('gpt-2', "x 12345 it's  ok\n")).toEqual(['x', ' 12345', ' it', "'s", ' ', ' ok', '\n'])
    expect(split('llama-bpe', "x 12345 it's")).toEqual(['x', ' ', '123', '45', ' it', "'s"])
    // default: punctuation runs, then GPT-2 words ('a', ' 1234'), then digit runs (' ', '1234'), then triples.
    expect(split(null, 'a 1234')).toEqual(['a', ' ', '123', '4'])
    expect(split('default', '1234')).toEqual(['123', '4'])
    expect(split('qwen2', 'ab12')).toEqual(['ab', '1', '2'])
  })

  it('names a character nothing can encode', async () => {
    const file = await ggufWith(gpt2Kvs('gpt-2'))
    const t = await loadGgufTokenizer(file)
    let err: unknown = null
    try {
      t.encode('z')
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'validation', file })
    expect(String(err)).toContain('U+007A')
  })
})

describe('what is not covered, and malformed metadata', () => {
  it('refuses other tokenizer models by name', async () => {
    for (const model of ['bert', 't5', 'rwkv']) {
      const file = await ggufWith([
        { key: 'tokenizer.ggml.model', type: 'string', value: model },
        { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: ['a'] },
      ])
      await expectWhittleError(() => loadGgufTokenizer(file), 'unsupported', file, `'${model}'`, 'not supported')
      // The same error reaches everything that tokenizes text for a model.
      await expectWhittleError(
        async () => tokenizeForEval(await openModelFiles(file), 'hello'),
        'unsupported',
        file,
        model,
      )
    }
  })

  it('refuses a byte-level pre-tokenizer it does not know', async () => {
    const file = await ggufWith(gpt2Kvs('deepseek-llm'))
    await expectWhittleError(() => loadGgufTokenizer(file), 'unsupported', file, 'deepseek-llm')
  })

  it('says when a GGUF has no tokenizer at all', async () => {
    const file = await ggufWith([])
    const files = await openModelFiles(file)
    expect(tokenizerSourceOf(files)).toBe('gguf')
    await expectWhittleError(() => tokenizeForEval(files, 'hello'), 'not-found', file, 'tokenizer')
  })

  it('checks array types and lengths', async () => {
    const short = await ggufWith([
      ...spmKvs([['a', 0]], { bytes: false }).filter((kv) => kv.key !== 'tokenizer.ggml.scores'),
      { key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: [0, 0] },
    ])
    await expectWhittleError(
      () => loadGgufTokenizer(short),
      'format',
      short,
      'tokenizer.ggml.scores',
      '2 items for 4 tokens',
    )
    const wrongType = await ggufWith([
      { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
      { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'i32', value: [1, 2] },
    ])
    await expectWhittleError(() => loadGgufTokenizer(wrongType), 'format', wrongType, 'tokenizer.ggml.tokens', 'string')
    const noMerges = await ggufWith(gpt2Kvs('gpt-2').filter((kv) => kv.key !== 'tokenizer.ggml.merges'))
    await expectWhittleError(() => loadGgufTokenizer(noMerges), 'format', noMerges, 'tokenizer.ggml.merges')
    const badBool = await ggufWith(
      spmKvs([], { extra: [{ key: 'tokenizer.ggml.add_bos_token', type: 'u8', value: 1 }] }),
    )
    await expectWhittleError(() => loadGgufTokenizer(badBool), 'format', badBool, 'add_bos_token', 'bool')
  })

  it('caches a tokenizer per file state', async () => {
    const file = await ggufWith(spmKvs([['a', 0]]))
    expect(await ggufTokenizerOf(file)).toBe(await ggufTokenizerOf(file))
  })
})
