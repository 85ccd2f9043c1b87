// whittle-report.json against its documentation: compress the bundled demo model with a recipe that
// makes every optional part appear (N:M masks, low-rank factors, a dropped layer), export it, re-read the
// report from disk and check every key in it against README's table, and the table against the report.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compressModel } from '../compress/compress-model'
import { validateRecipe } from '../compress/recipe/recipe'
import { readTextFile, tokenizeForEval } from '../eval/tokenize-text'
import { loadModel, type LoadedModel } from '../model/loaded-model'
import { WorkerPool } from '../pool/worker-pool'
import { exportModel } from './export-model'
import { REPORT_JSON_FILE } from './report-json'

const root = path.resolve(__dirname, '../../..')
const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-report-json-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

interface DocumentedKey {
  path: string
  optional: boolean
}

/** The key paths of README's whittle-report.json table (a row may name several), and which are optional. */
function documentedKeys(readme: string): DocumentedKey[] {
  const start = readme.indexOf('## The report: `whittle-report.json`')
  expect(start, 'README has a whittle-report.json section').toBeGreaterThanOrEqual(0)
  const end = readme.indexOf('\n## ', start + 1)
  const keys: DocumentedKey[] = []
  for (const line of readme.slice(start, end < 0 ? undefined : end).split('\n')) {
    const cells = line.split(' | ')
    if (!line.startsWith('| `') || cells.length < 3) continue
    const optional = cells[1].includes('optional')
    for (const m of cells[0].matchAll(/`([^`]+)`/g)) keys.push({ path: m[1], optional })
  }
  return keys
}

/**
 * Every key path in a JSON value: `a.b` for objects, `a[].b` inside arrays of objects. The recipe is a
 * document of its own (the Recipes section); inside it the check is only that keys are snake_case, except
 * `overrides`, whose keys are the user's tensor-name patterns, and prune_heads' `heads`, keyed by layer index.
 */
function keyPaths(
  value: unknown,
  prefix: string,
  out: { paths: Set<string>; recipeKeys: Set<string> },
  inRecipe = false,
): void {
  if (Array.isArray(value)) {
    for (const item of value) keyPaths(item, `${prefix}[]`, out, inRecipe)
    return
  }
  if (typeof value !== 'object' || value === null) return
  for (const [key, child] of Object.entries(value)) {
    const p = prefix ? `${prefix}.${key}` : key
    if (inRecipe) {
      if (!prefix.endsWith('recipe.overrides') && !prefix.endsWith('params.heads')) out.recipeKeys.add(key)
      keyPaths(child, p, out, true)
    } else {
      out.paths.add(p)
      keyPaths(child, p, out, p === 'recipe')
    }
  }
}

const SNAKE_CASE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/

describe('whittle-report.json', () => {
  let pool: WorkerPool
  let model: LoadedModel
  let report: Record<string, unknown>

  beforeAll(async () => {
    pool = await WorkerPool.create({ threads: 2 })
    model = await loadModel(path.join(root, 'resources/demo/stories260K'))
    const evalPath = path.join(root, 'resources/text/tinystories_eval.txt')
    const recipe = validateRecipe({
      calibration: { samples: 4, seqlen: 64, seed: 0 },
      steps: [
        { method: 'magnitude', targets: { include: ['mlp'] }, params: { sparsity: 0.5, pattern: '2:4' } },
        { method: 'low_rank', targets: { include: ['self_attn\\.o_proj'] }, params: { rank: 8 } },
        // Cuts one query head out of every key/value group of every block: the report's `blocks`.
        {
          method: 'prune_heads',
          params: { mode: 'physical', heads: Object.fromEntries([0, 1, 2, 3, 4].map((l) => [l, [0, 2, 4, 6]])) },
        },
        { method: 'drop_layers', params: { layers: [4] } },
        // A training step: the report's `training` records.
        {
          method: 'lora',
          targets: { include: ['self_attn\\.q_proj'] },
          params: { r: 2, steps: 2, batch_size: 1, seqlen: 64 },
        },
        // Distillation with evals during training: `training[].evals` and the kept `best_step`.
        {
          method: 'distill',
          targets: { include: ['self_attn\\.q_proj'] },
          params: {
            trainable: 'lora',
            steps: 2,
            batch_size: 1,
            seqlen: 64,
            eval_every: 1,
            eval_text: evalPath,
            eval_windows: 1,
          },
        },
      ],
      overrides: { 'layers.0.mlp.down_proj': { sparsity: 0.5 } },
      // A llama.cpp cache type whose block does not fit stories260K's head_dim of 8: kv_cache with its note.
      kv_cache: 'q8_0',
    })
    const out = await compressModel(pool, model, recipe, {
      recipeDir: root,
      defaultCalibrationText: path.join(root, 'resources/text/tinystories_calib.txt'),
      evalText: { path: evalPath, ids: await tokenizeForEval(model.files, await readTextFile(evalPath)) },
      seqlen: 64,
      maxEvalWindows: 2,
    })
    const dir = path.join(tmp, 'export')
    const compression = { source: model, report: out.report, records: out.records }
    await exportModel(pool, out.view, dir, { format: 'safetensors', compression })
    report = JSON.parse(readFileSync(path.join(dir, REPORT_JSON_FILE), 'utf8'))
    out.view.dispose()
  }, 300_000)
  afterAll(async () => {
    await pool?.close()
  })

  it('writes only documented, snake_case keys, recursively', () => {
    const documented = new Set(documentedKeys(readFileSync(path.join(root, 'README.md'), 'utf8')).map((k) => k.path))
    const found = { paths: new Set<string>(), recipeKeys: new Set<string>() }
    keyPaths(report, '', found)
    for (const p of found.paths) {
      expect(documented.has(p), `${p} is written but not in README's whittle-report.json table`).toBe(true)
      for (const key of p.replaceAll('[]', '').split('.')) expect(key, p).toMatch(SNAKE_CASE)
    }
    for (const key of found.recipeKeys) expect(key, `recipe key ${key}`).toMatch(SNAKE_CASE)
  })

  it('writes every documented key that is not optional, and this recipe makes the optional ones appear', () => {
    const found = { paths: new Set<string>(), recipeKeys: new Set<string>() }
    keyPaths(report, '', found)
    // A note appears only when a GGUF type falls back, which this recipe does not do.
    const notProduced = new Set(['tensors[].note'])
    for (const k of documentedKeys(readFileSync(path.join(root, 'README.md'), 'utf8'))) {
      if (notProduced.has(k.path)) continue
      expect(found.paths.has(k.path), `${k.path} is documented${k.optional ? ' (optional)' : ''} but not written`).toBe(
        true,
      )
    }
  })

  it('holds the numbers of the run in that casing', () => {
    expect(report.structure).toEqual({ layers: [5, 4], heads: [8, 4], kv_heads: [4, 4] })
    const a = model.arch
    expect(report.blocks).toEqual(
      [0, 1, 2, 3].map((layer) => ({
        layer,
        hidden: [a.hiddenSize, a.hiddenSize],
        heads: [a.heads, a.heads - 4],
        kv_heads: [a.kvHeads, a.kvHeads],
        intermediate: [a.intermediateSize, a.intermediateSize],
      })),
    )
    const tensors = report.tensors as Record<string, unknown>[]
    const pruned = tensors.filter((t) => t.method === 'magnitude')
    expect(pruned.length).toBeGreaterThan(0)
    for (const t of pruned) expect(t.nm).toMatchObject({ n: 2, m: 4, violations: 0, valid: true })
    const factored = tensors.filter((t) => t.method === 'low_rank')
    for (const t of factored) {
      const [rows, cols] = t.shape as [number, number]
      expect(t.stored_params).toBe(8 * (rows + cols))
    }
    expect(report.ppl_after_step).toHaveLength(6)
    expect((report.ppl_after_step as number[])[5]).toBe(report.ppl_after)
    // 4 kv heads × (K, V) × 8 values at q8_0's 8.5 bits, over 4 remaining layers.
    expect(report.kv_cache).toMatchObject({
      scheme: 'q8_0',
      key_bits: 8.5,
      value_bits: 8.5,
      bytes_per_token: (4 * 4 * 2 * 8 * 8.5) / 8,
      context_length: 64,
      llama_cpp: '--cache-type-k q8_0 --cache-type-v q8_0 -fa on',
    })
    expect((report.recipe as { kv_cache?: string }).kv_cache).toBe('q8_0')
    expect(report.training).toMatchObject([
      { step: 4, method: 'lora', steps: 2, tokens: 2 * 64 },
      { step: 5, method: 'distill', steps: 2, tokens: 2 * 64, evals: [{ step: 1 }, { step: 2 }] },
    ])
  })
})
