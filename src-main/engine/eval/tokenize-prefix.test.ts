// Tokenizing only the head of a text (tokenizeForEval's maxTokens) must give exactly the whole text's ids cut
// to that length. Checked against the reference ids in ../shared (the whole texts tokenized by the original
// tokenizer, BOS first), at the cuts tokenizeForEval picks and at newline cuts spread through the texts;
// and the conditions that make a newline cut exact are checked to reject tokenizers they do not hold for.

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { openModelFiles } from '../formats/open'
import { encodeText } from '../formats/tokenizer'
import { newlineCutsAreExact } from '../formats/tokenizer-prefix'
import { hasShared, referenceIds, shared, SKIP_SHARED } from '../testing/shared-data'
import { DEMO_MODEL_DIR } from './testing/demo-model'
import { encodePrefix, readTextFile, tokenizeForEval } from './tokenize-text'

const TEXTS = ['tinystories_eval', 'wikitext2_test'] as const

describe.skipIf(!hasShared)(`tokenizeForEval with maxTokens on the reference texts (${SKIP_SHARED})`, () => {
  for (const name of TEXTS) {
    it(`${name}: the first maxTokens of the whole text's reference ids`, async () => {
      const files = await openModelFiles(shared('models', 'stories260K'))
      const text = await readTextFile(shared('text', `${name}.txt`))
      const reference = referenceIds(name)
      for (const maxTokens of [1, 2, 255, 256, 257, 2 * 256, 16 * 256 + 1, 64 * 256]) {
        const ids = await tokenizeForEval(files, text, { maxTokens })
        expect(Array.from(ids), `maxTokens ${maxTokens}`).toEqual(Array.from(reference.subarray(0, maxTokens)))
      }
    })

    it(`${name}: every id of the prefixes encodePrefix picks is the whole text's`, async () => {
      const text = await readTextFile(shared('text', `${name}.txt`))
      const reference = referenceIds(name).subarray(1) // without the BOS
      const encode = (part: string): Promise<Int32Array> => encodeText(shared('models', 'stories260K'), part)
      for (const wanted of [1, 300, 5000]) {
        const ids = await encodePrefix(encode, text, wanted)
        expect(ids.length).toBeGreaterThanOrEqual(wanted)
        expect(Array.from(ids), `wanted ${wanted}`).toEqual(Array.from(reference.subarray(0, ids.length)))
      }
    })

    it(`${name}: a prefix cut just after any newline encodes to the head of the whole text's ids`, async () => {
      const text = await readTextFile(shared('text', `${name}.txt`))
      const reference = referenceIds(name).subarray(1) // without the BOS
      // Newline cuts spread over the first 24 KB: blank lines, ends of lines, lines of " " (WikiText).
      const cuts: number[] = []
      for (let at = text.indexOf('\n'); at >= 0 && at < 24_000; at = text.indexOf('\n', at + 1)) cuts.push(at + 1)
      const picked = cuts.filter((_, i) => i % Math.ceil(cuts.length / 24) === 0)
      expect(picked.length).toBeGreaterThan(10)
      for (const cut of picked) {
        const ids = await encodeText(shared('models', 'stories260K'), text.slice(0, cut))
        expect(ids.length).toBeGreaterThan(0)
        expect(Array.from(ids), `cut at ${cut}`).toEqual(Array.from(reference.subarray(0, ids.length)))
      }
    })
  }
})

describe('tokenizeForEval with maxTokens', () => {
  it('gives the whole short text, cut to maxTokens, the same as without it', async () => {
    const files = await openModelFiles(DEMO_MODEL_DIR)
    const text = 'Once upon a time, there was a cat.\nThe cat sat.\n\nThe end'
    const whole = await tokenizeForEval(files, text)
    expect(whole.length).toBeGreaterThan(12)
    expect(Array.from(await tokenizeForEval(files, text, { maxTokens: 1000 }))).toEqual(Array.from(whole))
    expect(Array.from(await tokenizeForEval(files, text, { maxTokens: 12 }))).toEqual(Array.from(whole.subarray(0, 12)))
  })
})

describe('newlineCutsAreExact', () => {
  const json = JSON.parse(readFileSync(path.join(DEMO_MODEL_DIR, 'tokenizer.json'), 'utf8'))
  const variant = (edit: (t: typeof json) => void): unknown => {
    const t = structuredClone(json)
    edit(t)
    return t
  }

  it("holds for stories260K's Llama-2-style tokenizer", () => {
    expect(newlineCutsAreExact(json, {})).toBe(true)
  })

  it('refuses anything that can look across a newline or drop the one the prefix ends with', () => {
    const refused: [string, unknown, unknown][] = [
      ['a pre-tokenizer', variant((t) => (t.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false })), {}],
      [
        'a regex Replace',
        variant((t) => (t.normalizer = { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' })),
        {},
      ],
      [
        'a Replace of a newline',
        variant((t) => (t.normalizer = { type: 'Replace', pattern: { String: '\n' }, content: '▁' })),
        {},
      ],
      [
        'a Strip normalizer',
        variant((t) => (t.normalizer = { type: 'Strip', strip_left: false, strip_right: true })),
        {},
      ],
      ['a merged token holding a newline', variant((t) => (t.model.vocab['a\n'] = 9999)), {}],
      ['a merge with a newline', variant((t) => t.model.merges.push('\n a')), {}],
      ['an rstrip added token', variant((t) => (t.added_tokens[0].rstrip = true)), {}],
      ['truncation', variant((t) => (t.truncation = { max_length: 8 })), {}],
      ['an end-of-word suffix', variant((t) => (t.model.end_of_word_suffix = '</w>')), {}],
      ['a newline that would be unknown', variant((t) => (t.model.byte_fallback = false)), {}],
      ['remove_space', json, { remove_space: true }],
      ['a WordPiece model', variant((t) => (t.model.type = 'WordPiece')), {}],
    ]
    for (const [what, tokenizer, config] of refused) expect(newlineCutsAreExact(tokenizer, config), what).toBe(false)
  })
})
