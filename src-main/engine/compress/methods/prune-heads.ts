// Attention-head pruning: remove heads picked by the user (layer → heads) or the `count` least important
// per layer, by ablation ΔNLL or by the o_proj output-norm proxy (analysis/head-importance.ts).
// - masked: the heads' q rows and o columns are zeroed (and k/v rows of a key/value head whose whole
//   query group goes); shapes stay, so any selection works.
// - physical: the heads are cut out and the config's head counts updated. Under grouped-query attention a
//   model keeps one group size, so a layer may either drop whole groups (their key/value head goes too)
//   or drop the same number of query heads from every group; and every layer must end with the same
//   counts, since a config holds one num_attention_heads.

import { headImportance } from '../../analysis/head-importance'
import { WhittleError } from '../../errors'
import { readTensorF32 } from '../../formats/read'
import { createForward } from '../../forward'
import { tensorName } from '../../arch'
import { restructureModel, type KeptHeads } from '../structure/restructure'
import { choiceParam, indexMapParam, intParam, type ParamSpec } from '../../../contract/method-params'
import type { CompressionMethod, StructureResult } from './method'
import { ParamReader } from './params'

export interface PruneHeadsParams {
  mode: 'masked' | 'physical'
  /** Explicit selection: layer → head indices. */
  heads: Map<number, number[]> | null
  count: number | null
  by: 'ablation' | 'proxy'
}

function parseHeads(v: unknown, r: ParamReader): Map<number, number[]> | null {
  if (v === undefined) return null
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    r.fail('heads', 'must map layer indices to lists of head indices, e.g. {"0": [1, 3]}')
  const out = new Map<number, number[]>()
  for (const [k, list] of Object.entries(v as Record<string, unknown>)) {
    const layer = Number(k)
    if (!Number.isInteger(layer) || layer < 0) r.fail('heads', `has a key "${k}" that is not a layer index`)
    if (!Array.isArray(list) || !list.every((h) => Number.isInteger(h) && h >= 0))
      r.fail('heads', `["${k}"] must be a list of head indices`)
    if (list.length > 0)
      out.set(
        layer,
        [...new Set(list as number[])].sort((a, b) => a - b),
      )
  }
  if (out.size === 0) r.fail('heads', 'selects no head')
  return out
}

/** Per layer, the kept query and key/value heads a physical removal of `removed` leaves; errors say why not. */
export function physicalPlan(
  removed: Map<number, number[]>,
  layers: number,
  heads: number,
  kvHeads: number,
): Map<number, KeptHeads> {
  const g = heads / kvHeads
  const plan = new Map<number, KeptHeads>()
  for (let layer = 0; layer < layers; layer++) {
    const gone = new Set(removed.get(layer) ?? [])
    const perGroup = Array.from(
      { length: kvHeads },
      (_, j) => Array.from({ length: g }, (_, i) => j * g + i).filter((h) => gone.has(h)).length,
    )
    const wholeGroups = perGroup.every((r) => r === 0 || r === g)
    const evenly = perGroup.every((r) => r === perGroup[0])
    if (!wholeGroups && !evenly) {
      throw new WhittleError(
        'validation',
        null,
        `prune_heads: layer ${layer}'s selection cannot be removed physically: with ${kvHeads} key/value heads shared by groups of ${g} query heads, remove whole groups (heads ${Array.from({ length: g }, (_, i) => i).join(', ')} share key/value head 0, and so on) or the same number from every group; use mode masked for any selection`,
      )
    }
    const q = Array.from({ length: heads }, (_, h) => h).filter((h) => !gone.has(h))
    const kv = Array.from({ length: kvHeads }, (_, j) => j).filter((j) => perGroup[j] < g)
    if (q.length === 0)
      throw new WhittleError(
        'validation',
        null,
        `prune_heads: removing every head of layer ${layer} physically leaves no attention; drop the layer instead`,
      )
    plan.set(layer, { q, kv })
  }
  const counts = new Set([...plan.values()].map((k) => `${k.q.length} query / ${k.kv.length} key-value heads`))
  if (counts.size > 1)
    throw new WhittleError(
      'validation',
      null,
      `prune_heads: physical removal must leave every layer with the same heads (this selection leaves ${[...counts].join(' in some, ')} in others)`,
    )
  return plan
}

/** The `count` least important heads of each layer; for physical GQA removal, chosen so the plan stays valid. */
export function leastImportant(
  scores: number[][],
  count: number,
  mode: 'masked' | 'physical',
  kvHeads: number,
): Map<number, number[]> {
  const out = new Map<number, number[]>()
  scores.forEach((row, layer) => {
    const H = row.length,
      g = H / kvHeads
    const byScore = (ids: number[], value: (i: number) => number): number[] =>
      [...ids].sort((a, b) => value(a) - value(b) || a - b)
    if (mode === 'masked' || g === 1) {
      out.set(
        layer,
        byScore(
          row.map((_, h) => h),
          (h) => row[h],
        )
          .slice(0, count)
          .sort((a, b) => a - b),
      )
    } else if (count % g === 0) {
      const groups = byScore(
        Array.from({ length: kvHeads }, (_, j) => j),
        (j) => row.slice(j * g, (j + 1) * g).reduce((s, x) => s + x, 0),
      ).slice(0, count / g)
      out.set(
        layer,
        groups.flatMap((j) => Array.from({ length: g }, (_, i) => j * g + i)).sort((a, b) => a - b),
      )
    } else if (count % kvHeads === 0) {
      const per = count / kvHeads
      out.set(
        layer,
        Array.from({ length: kvHeads }, (_, j) =>
          byScore(
            Array.from({ length: g }, (_, i) => j * g + i),
            (h) => row[h],
          ).slice(0, per),
        )
          .flat()
          .sort((a, b) => a - b),
      )
    } else {
      throw new WhittleError(
        'validation',
        null,
        `prune_heads: removing ${count} heads per layer physically needs a multiple of the group size ${g} (whole groups) or of the ${kvHeads} key/value heads (the same from every group)`,
      )
    }
  })
  return out
}

async function maskHeads(
  ctx: Parameters<NonNullable<CompressionMethod<PruneHeadsParams>['restructure']>>[0],
  removed: Map<number, number[]>,
): Promise<StructureResult> {
  const { view } = ctx
  const a = view.arch,
    hd = a.headDim,
    g = a.heads / a.kvHeads
  const changed: StructureResult['changed'] = []
  for (const [layer, heads] of removed) {
    const goneKv = Array.from({ length: a.kvHeads }, (_, j) => j).filter((j) =>
      Array.from({ length: g }, (_, i) => j * g + i).every((h) => heads.includes(h)),
    )
    for (const role of ['q', 'k', 'v', 'o'] as const) {
      const name = tensorName(a, layer, role)
      if (!name)
        throw new WhittleError('not-found', view.files.path, `layer ${layer} has no ${role} projection to mask`)
      if (a.places[name].transposed)
        throw new WhittleError('unsupported', view.files.path, `${name}: heads cannot be masked in Conv1D weights yet`)
      const e = view.entry(name)
      const before = await readTensorF32(e)
      const w = before.slice()
      const [rows, cols] = e.shape
      const blocks = role === 'q' || role === 'o' ? heads : goneKv
      if (blocks.length === 0) continue
      for (const b of blocks) {
        if (role === 'o') for (let r = 0; r < rows; r++) w.fill(0, r * cols + b * hd, r * cols + (b + 1) * hd)
        else w.fill(0, b * hd * cols, (b + 1) * hd * cols)
      }
      view.replace(name, w)
      changed.push({ name, before, format: `heads ${blocks.join(', ')} masked` })
    }
  }
  return { view, changed, note: describe(removed, 'masked') }
}

function describe(removed: Map<number, number[]>, how: string): string {
  return `${how}: ${[...removed].map(([l, hs]) => `layer ${l} heads ${hs.join(', ')}`).join('; ')}`
}

export const PRUNE_HEADS_PARAMS: readonly ParamSpec[] = [
  choiceParam('mode', 'masked', ['masked', 'physical'], 'Zero the heads, or cut them out (a smaller model)'),
  choiceParam(
    'by',
    'ablation',
    ['ablation', 'proxy'],
    'How count ranks heads: loss increase when ablated, or a weight-norm proxy',
  ),
  indexMapParam('heads', 'Heads to remove, layer → head indices, e.g. {"0": [1, 3]} (or give count)'),
  intParam('count', null, 1, 1 << 12, 'Heads to remove per layer, least important first (or give heads)'),
]

export const pruneHeads: CompressionMethod<PruneHeadsParams> = {
  name: 'prune_heads',
  kind: 'structure',
  summary: 'Remove attention heads, by hand or the least important per layer; masked or physically',
  params: PRUNE_HEADS_PARAMS,
  // Windows are used only to rank by importance (count); an explicit selection ignores them.
  needs: { calibration: true, hessian: false },
  parseParams(raw, where) {
    const r = new ParamReader(raw, where, PRUNE_HEADS_PARAMS)
    const mode = r.oneOf<PruneHeadsParams['mode']>('mode')
    const by = r.oneOf<PruneHeadsParams['by']>('by')
    const heads = parseHeads(r.take('heads'), r)
    const count = r.optInt('count')
    r.done()
    if ((heads === null) === (count === null))
      r.fail(
        heads ? 'count' : 'heads',
        'give exactly one of heads (layer → head list) or count (per layer, least important first)',
      )
    return { mode, heads, count, by }
  },
  predict: () => ({ bitsPerWeight: 0, format: 'heads removed' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'prune_heads works on whole layers, not on single Linears')
  },
  async restructure(ctx) {
    const a = ctx.view.arch
    let removed = ctx.params.heads
    if (removed) {
      for (const [layer, hs] of removed) {
        if (layer >= a.layers)
          throw new WhittleError(
            'validation',
            null,
            `prune_heads: layer ${layer} does not exist (the model has layers 0–${a.layers - 1})`,
          )
        const bad = hs.filter((h) => h >= a.heads)
        if (bad.length)
          throw new WhittleError(
            'validation',
            null,
            `prune_heads: head ${bad.join(', ')} of layer ${layer} does not exist (layers have heads 0–${a.heads - 1})`,
          )
      }
    } else {
      const count = ctx.params.count!
      if (count >= a.heads)
        throw new WhittleError('validation', null, `prune_heads: cannot remove ${count} of ${a.heads} heads per layer`)
      if (!ctx.windows?.length)
        throw new WhittleError('validation', null, 'prune_heads by count needs calibration windows to rank the heads')
      const forward = await createForward(ctx.pool, ctx.view)
      try {
        const importance = await headImportance(forward, ctx.view, ctx.windows, {
          signal: ctx.signal,
          onProgress: (f, m) => ctx.onProgress?.(0.9 * f, `ranking heads: ${m}`),
        })
        removed = leastImportant(
          ctx.params.by === 'proxy' ? importance.proxy : importance.ablation,
          count,
          ctx.params.mode,
          a.kvHeads,
        )
      } finally {
        forward.close()
      }
    }
    if (ctx.params.mode === 'masked') return maskHeads(ctx, removed)
    const plan = physicalPlan(removed, a.layers, a.heads, a.kvHeads)
    const { view, renames } = await restructureModel(ctx.view, {
      keepLayers: Array.from({ length: a.layers }, (_, i) => i),
      heads: plan,
    })
    const first = plan.values().next().value!
    return {
      view,
      renames,
      changed: [],
      note: `${describe(removed, 'removed')} (${a.heads} → ${first.q.length} heads, ${a.kvHeads} → ${first.kv.length} key/value heads)`,
    }
  },
}
