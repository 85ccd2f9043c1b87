// CoFi (Xia et al. 2022, "Structured pruning learns compact and accurate models"): structured pruning
// learned jointly with distillation, on the training engine (src-main/engine/train/).
// - Units: attention head groups and MLP intermediate neurons (the units Bonsai removes,
//   compress/structure/unit-masks.ts), each with a hard-concrete (L0) gate (structure/cofi-gates.ts)
//   that multiplies the unit's output in the student's forward (structure/cofi-hooks.ts), so the
//   backward reaches log α; one gate per block's attention and MLP sub-layer, multiplying the
//   sub-layer's output (so each of its units' gates); and with hidden_gates the paper's z_hidden, one gate
//   per residual-stream dimension shared by every layer, multiplying the embedding output and every
//   sub-layer's output before the residual add (the Linears see z·∂L/∂y, the residual ∂L/∂y).
// - Objective: the distillation loss from the model as the step receives it (distill's logit KD:
//   α·T²·KL + (1 − α)·CE) plus, with layer_distill > 0, the paper's layer-wise distillation of hidden
//   states (train/layer-distillation.ts: each teacher block output matched to the nearest student block
//   output through a learned map W_layer), while the decoder Linears train with AdamW; plus the Lagrangian
//   λ1(ŝ − t) + λ2(ŝ − t)² on the expected removed share ŝ of the model's parameters (the paper's count:
//   a unit survives when its gate and its sub-layer's both do, and every matrix's hidden side scales with
//   the expected kept hidden dimensions); the target t rises linearly from 0 to
//   `reduction` over the first sparsity_warmup of the gate-learning steps, then holds.
// - Then the gates become deterministic; the hidden dimensions gated to 0 go, never beyond the budget
//   (structure/cofi-selection.ts), and the units to remove are chosen for exactly Bonsai's budget rule at
//   that hidden size (selectUnits, ranked by each unit's survival probability; the units of a sub-layer
//   gated to 0 first, at no cost, and under per-layer widths every neuron of an MLP gated to 0 but the one
//   each layer keeps), the kept gate values are folded into o_proj's and down_proj's columns (the hidden
//   gates into their rows and the embedding's columns), and the units are removed physically
//   (structure/remove-units.ts), then the hidden dimensions (structure/remove-hidden.ts: exact, the norms
//   rescaled and ε·H/H′; a plain Llama config with head_dim). A sub-layer gated to 0 keeps one unit (one
//   head count serves every layer, and neither Whittle's loader nor transformers' has a block without
//   attention or MLP) whose output weights are then 0.
// - The last `finetune` share of the steps distils the smaller model (the paper's fine-tuning), with the
//   same teacher and W_layer, loaded once for both phases; after hidden dimensions went, on the logits
//   alone (W_layer is H × H).

import { WhittleError } from '../../errors'
import { ADAMW_DEFAULTS } from '../../train/adamw'
import { LlamaTrainer } from '../../train/llama-trainer'
import type { LossSettings } from '../../train/head-loss'
import { LayerDistillation } from '../../train/layer-distillation'
import { LlamaWeights } from '../../train/llama-weights'
import type { ModelView } from '../../model/model-view'
import { seededRandom } from '../../train/seeded-random'
import { train, type StepReport, type TrainResult, type TrainSettings, type WindowOrder } from '../../train/train-loop'
import { boolParam, numberParam, type ParamSpec } from '../../../contract/method-params'
import { CofiGates, dropZeroSubLayers, foldGates, type GateStepReport } from '../structure/cofi-gates'
import { cofiEmbeddingHooks, cofiHooks } from '../structure/cofi-hooks'
import { selectCofi } from '../structure/cofi-selection'
import { foldHiddenGates, removeHidden } from '../structure/remove-hidden'
import { removeUnits } from '../structure/remove-units'
import { unitLayout } from '../structure/unit-masks'
import { selectUnits } from '../structure/unit-selection'
import { DISTILL_PARAMS } from './distill'
import type { CompressionMethod, StructureContext, StructureResult } from './method'
import { ParamReader } from './params'
import { trainingIds } from './training-text'

export interface CofiParams {
  /** Fraction of the model's parameters to remove. */
  reduction: number
  steps: number
  batchSize: number
  microBatch: number
  seqlen: number
  order: WindowOrder
  seed: number
  /** Learning rate of the decoder Linears (AdamW). */
  lr: number
  /** Learning rate of the gates' log α (Adam). */
  gateLr: number
  /** Learning rate of the Lagrange multipliers λ1, λ2 (Adam, ascending). */
  lambdaLr: number
  /** Share of the gate-learning steps over which the target sparsity rises linearly from 0. */
  sparsityWarmup: number
  /** Share of the steps that fine-tune the smaller model after the units are removed. */
  finetune: number
  droprateInit: number
  temperature: number
  alpha: number
  maxGradNorm: number
  uniform: boolean
  /** Weight of the layer-wise distillation of hidden states beside the logit loss; 0 = logits only. */
  layerDistill: number
  /** Gates on the hidden dimensions (z_hidden), removed from the residual stream of every layer. */
  hiddenGates: boolean
  text: string | undefined
}

/** Distill's parameters that mean the same here: one spec each, shared. */
const SHARED = [
  'steps',
  'batch_size',
  'micro_batch',
  'seqlen',
  'order',
  'seed',
  'lr',
  'max_grad_norm',
  'temperature',
  'alpha',
  'text',
]

export const COFI_PARAMS: readonly ParamSpec[] = [
  numberParam('reduction', 0.5, 0.01, 0.9, "Fraction of the model's parameters to remove", 0.05),
  ...DISTILL_PARAMS.filter((p) => SHARED.includes(p.name)),
  numberParam('gate_lr', 0.1, 1e-6, 10, "Learning rate of the gates' log α (Adam)"),
  numberParam('lambda_lr', 1, 1e-6, 100, 'Learning rate of the Lagrange multipliers λ1, λ2 (Adam, ascending)'),
  numberParam(
    'sparsity_warmup',
    0.5,
    0,
    1,
    'Share of the gate-learning steps over which the target sparsity rises linearly from 0 to reduction',
    0.05,
  ),
  numberParam(
    'finetune',
    0.5,
    0,
    0.95,
    'Share of the steps that distil the smaller model after the units are removed (the rest learn the gates)',
    0.05,
  ),
  numberParam(
    'droprate_init',
    0.5,
    0.01,
    0.99,
    "Each gate's initial drop rate: log α starts at log((1 − d) / d)",
    0.05,
  ),
  boolParam(
    'uniform',
    true,
    'The same number of neurons from every layer (a plain config); false: per-layer widths (whittle_intermediate_sizes)',
  ),
  numberParam(
    'layer_distill',
    1,
    0,
    100,
    "Weight of the layer-wise distillation (the student's block outputs, through a learned map, matched to the teacher's); 0 = logits only",
    0.1,
  ),
  // Off by default: on stories260K at 50% in 100 steps no hidden gate closed, and their noise on every
  // residual dimension cost perplexity (README, CoFi).
  boolParam(
    'hidden_gates',
    false,
    'Also learn a gate per hidden dimension (z_hidden, shared by every layer) and remove those gated to 0 from the residual stream',
  ),
]

function parseCofiParams(raw: Record<string, unknown>, where: string): CofiParams {
  const r = new ParamReader(raw, where, COFI_PARAMS)
  const batchSize = r.int('batch_size')
  const microBatch = r.int('micro_batch', batchSize)
  if (microBatch > batchSize) r.fail('micro_batch', `must be an integer in [1, ${batchSize}] (got ${microBatch})`)
  const p: CofiParams = {
    reduction: r.num('reduction'),
    steps: r.int('steps'),
    batchSize,
    microBatch,
    seqlen: r.int('seqlen'),
    order: r.oneOf<WindowOrder>('order'),
    seed: r.int('seed'),
    lr: r.num('lr'),
    gateLr: r.num('gate_lr'),
    lambdaLr: r.num('lambda_lr'),
    sparsityWarmup: r.num('sparsity_warmup'),
    finetune: r.num('finetune'),
    droprateInit: r.num('droprate_init'),
    temperature: r.num('temperature'),
    alpha: r.num('alpha'),
    maxGradNorm: r.num('max_grad_norm'),
    uniform: r.bool('uniform'),
    layerDistill: r.num('layer_distill'),
    hiddenGates: r.bool('hidden_gates'),
    text: r.optString('text'),
  }
  r.done()
  if (p.layerDistill > 0 && p.alpha === 0)
    r.fail(
      'layer_distill',
      'distils hidden states from the teacher, which alpha 0 does not load: set layer_distill: 0 with it',
    )
  if (!p.uniform && p.finetune > 0)
    r.fail(
      'uniform',
      'false gives layers of different widths, which the training engine cannot fine-tune: set finetune: 0 with it',
    )
  return p
}

/** The training text: params.text, or the calibration windows end to end. */
async function trainingText(ctx: StructureContext<CofiParams>): Promise<Int32Array> {
  const p = ctx.params
  let ids: Int32Array
  if (p.text) ids = await trainingIds(ctx.view, p.text)
  else if (ctx.windows?.length) {
    ids = new Int32Array(ctx.windows.reduce((s, w) => s + w.length, 0))
    let at = 0
    for (const w of ctx.windows) {
      ids.set(w, at)
      at += w.length
    }
  } else
    throw new WhittleError('validation', null, 'cofi needs training text: give params.text, or calibration windows')
  if (ids.length < p.seqlen)
    throw new WhittleError(
      'validation',
      p.text ?? null,
      `the training text has ${ids.length} tokens, fewer than one window of ${p.seqlen}`,
    )
  return ids
}

/** The training loop's settings for `steps` steps of the step's batches and lr. */
function trainSettings(p: CofiParams, steps: number): TrainSettings {
  return {
    steps,
    batchSize: p.batchSize,
    microBatch: p.microBatch,
    order: p.order,
    seed: p.seed,
    lr: p.lr,
    schedule: 'constant',
    warmupSteps: 0,
    optimizer: { ...ADAMW_DEFAULTS },
    maxGradNorm: p.maxGradNorm,
  }
}

/** Trains the gates with the Linears for `steps` steps, then folds the deterministic gates into `view`. */
async function learnGates(
  ctx: StructureContext<CofiParams>,
  ids: Int32Array,
  gates: CofiGates,
  teacher: LlamaWeights | null,
  layers: LayerDistillation | null,
  steps: number,
  totalSteps: number,
): Promise<{ result: TrainResult; last: GateStepReport | null }> {
  const p = ctx.params,
    view = ctx.view,
    layout = gates.layout
  const random = seededRandom(p.seed * 7919 + 1)
  const warmupSteps = Math.max(1, Math.round(p.sparsityWarmup * steps))
  const trainer = await LlamaTrainer.create(ctx.pool, view, teacher, p.seqlen, loss(p))
  let last: GateStepReport | null = null
  try {
    trainer.studentHooks = cofiHooks(gates)
    trainer.embeddingHooks = cofiEmbeddingHooks(gates)
    trainer.layerDistillation = layers
    gates.sample(random)
    const result = await train(trainer, ids, trainSettings(p, steps), {
      signal: ctx.signal,
      onStep: (r: StepReport) => {
        const target = p.reduction * Math.min(1, (r.step + 1) / warmupSteps)
        last = gates.update(target, p.gateLr, p.lambdaLr)
        const layerLoss = layers?.update(r.lr)
        gates.sample(random)
        ctx.onProgress?.(
          (r.step + 1) / totalSteps,
          `step ${r.step + 1}/${totalSteps} · loss ${r.loss.toFixed(4)}${layerLoss === undefined ? '' : ` + layer ${layerLoss.toFixed(4)}`} · expected sparsity ${last.expectedSparsity.toFixed(3)} (target ${target.toFixed(3)})`,
        )
      },
    })
    gates.makeDeterministic()
    const trained = trainer.weights()
    for (let l = 0; l < layout.layers; l++) {
      const names = trainer.student.names[l]
      foldGates(gates, l, trained.get(names.o)!, trained.get(names.down)!)
    }
    for (const [name, w] of trained) view.replace(name, w)
    if (gates.hiddenSize > 0) await foldHiddenGates(view, gates.hiddenGates())
    return { result, last }
  } finally {
    trainer.free()
  }
}

/** Distils the smaller model for `steps` steps (the paper's fine-tuning after the masks are fixed). */
async function finetune(
  ctx: StructureContext<CofiParams>,
  view: ModelView,
  ids: Int32Array,
  teacher: LlamaWeights | null,
  layers: LayerDistillation | null,
  steps: number,
  done: number,
): Promise<TrainResult> {
  const p = ctx.params
  const trainer = await LlamaTrainer.create(ctx.pool, view, teacher, p.seqlen, loss(p))
  try {
    trainer.layerDistillation = layers
    const result = await train(trainer, ids, trainSettings(p, steps), {
      signal: ctx.signal,
      onStep: (r: StepReport) => {
        const layerLoss = layers?.update(r.lr)
        ctx.onProgress?.(
          (done + r.step + 1) / p.steps,
          `step ${done + r.step + 1}/${p.steps} (fine-tuning the smaller model) · loss ${r.loss.toFixed(4)}${layerLoss === undefined ? '' : ` + layer ${layerLoss.toFixed(4)}`}`,
        )
      },
    })
    for (const [name, w] of trainer.weights()) view.replace(name, w)
    return result
  } finally {
    trainer.free()
  }
}

const loss = (p: CofiParams): LossSettings => ({ temperature: p.temperature, alpha: p.alpha })

async function cofiRun(ctx: StructureContext<CofiParams>): Promise<StructureResult> {
  const p = ctx.params
  const view = ctx.view
  const layout = unitLayout(view)
  if (view.arch.intermediateSizes)
    throw new WhittleError(
      'unsupported',
      view.files.path,
      'cofi trains a model whose layers share one intermediate_size; this one has per-layer widths',
    )
  for (const t of view.tensors)
    if (t.layer !== null && ['q', 'k', 'v', 'o', 'gate', 'up', 'down'].includes(t.role)) {
      const dtype = view.entry(t.name).dtype
      if (!['F32', 'F16', 'BF16'].includes(dtype))
        throw new WhittleError(
          'unsupported',
          view.files.path,
          `cofi: ${t.name} is stored as ${dtype}; cofi trains the Linears and needs them unquantized (run it before quantizing)`,
        )
    }
  const ids = await trainingText(ctx)
  const before = view.files.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0)
  const targetParams = Math.ceil(p.reduction * before)
  const H = view.arch.hiddenSize
  const gates = new CofiGates(layout, before, p.droprateInit, p.hiddenGates ? H : 0)
  // A reduction that no selection can meet fails before training, not after.
  selectUnits(layout, gates.keepProbabilities(), targetParams, { uniform: p.uniform, split: 'predicted' })
  const pruneSteps = Math.max(1, Math.round((1 - p.finetune) * p.steps))
  const finetuneSteps = p.steps - pruneSteps
  // The teacher is the model as this step receives it, loaded once for both phases.
  const teacher = p.alpha > 0 ? await LlamaWeights.load(ctx.pool, view) : null
  // One W_layer for both phases: the smaller model keeps every layer (and, without hidden gates, the hidden
  // size; a narrower residual stream fine-tunes on the logits alone, W_layer being H × H).
  const layers = teacher && p.layerDistill > 0 ? new LayerDistillation(H, p.layerDistill) : null
  try {
    const { result, last } = await learnGates(ctx, ids, gates, teacher, layers, pruneSteps, p.steps)
    const zero = gates.zeroSubLayers()
    const chosen = selectCofi(gates, targetParams, { uniform: p.uniform, keep: gates.keepProbabilities() })
    const selection = dropZeroSubLayers(gates, chosen.units, p.uniform)
    const withoutUnits = await removeUnits(view, layout, selection)
    const narrower = chosen.hidden.length > 0 && chosen.hidden.length < H
    const smaller = narrower
      ? { ...withoutUnits, view: await removeHidden(withoutUnits.view, chosen.hidden) }
      : withoutUnits
    const tuned =
      finetuneSteps > 0
        ? await finetune(ctx, smaller.view, ids, teacher, narrower ? null : layers, finetuneSteps, pruneSteps)
        : null
    const after = smaller.view.files.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0)
    const widths = selection.neurons.map((n) => n.length)
    const a = view.arch
    const steps = [...result.steps, ...(tuned?.steps ?? [])]
    ctx.onProgress?.(1, 'units removed')
    return {
      view: smaller.view,
      ...(smaller.renames ? { renames: smaller.renames } : {}),
      changed: [],
      note:
        `cofi (L0 gates on sub-layers, heads${p.hiddenGates ? ', neurons and hidden dimensions' : ' and neurons'}, ${p.alpha > 0 ? `KD T ${p.temperature} α ${p.alpha}` : 'CE'}` +
        `${layers ? ` + layer distillation ${p.layerDistill}` : ''}; ` +
        `${pruneSteps} steps learning the gates to expected sparsity ${last ? last.expectedSparsity.toFixed(3) : '-'}, ` +
        `${zero.attention.length + zero.mlp.length > 0 ? `sub-layers gated to 0: attention [${zero.attention.join(', ')}], MLP [${zero.mlp.join(', ')}], ` : ''}` +
        `${finetuneSteps} fine-tuning the smaller model): ` +
        `${narrower ? `hidden size ${H} → ${chosen.hidden.length}, ` : ''}` +
        `${a.heads} → ${selection.groups[0].length * layout.headsPerGroup} heads, ` +
        `intermediate size ${a.intermediateSize} → ${p.uniform ? widths[0] : `[${widths.join(', ')}]`}, ` +
        `${before} → ${after} parameters (${((1 - after / before) * 100).toFixed(1)}% fewer); ` +
        `loss ${steps[0].loss.toFixed(4)} → ${steps[steps.length - 1].loss.toFixed(4)}`,
      training: {
        steps: p.steps,
        firstLoss: steps[0].loss,
        lastLoss: steps[steps.length - 1].loss,
        tokens: result.tokens + (tuned?.tokens ?? 0),
        seconds: result.seconds + (tuned?.seconds ?? 0),
        losses: steps.map((s) => s.loss),
      },
    }
  } finally {
    teacher?.free()
  }
}

export const cofi: CompressionMethod<CofiParams> = {
  name: 'cofi',
  kind: 'structure',
  summary:
    'CoFi: learn hard-concrete (L0) gates on attention heads and MLP neurons with distillation and a Lagrangian sparsity target; a smaller model',
  params: COFI_PARAMS,
  needs: { calibration: true, hessian: false },
  parseParams: parseCofiParams,
  predict: () => ({ bitsPerWeight: 0, format: 'heads and neurons removed' }),
  async compressGroup() {
    throw new WhittleError('validation', null, 'cofi trains the whole model, not single Linears')
  },
  restructure: cofiRun,
}
