// Runs a recipe over a model, sequentially as in the GPTQ reference: layer i is compressed with
// inputs computed through layers < i that are already compressed. Two forward passes share one view
// of the model: `original` runs block i before it is compressed (to capture its inputs' statistics),
// `compressed` runs it after (to produce the inputs of block i + 1). Each loads a layer once, so with
// resident weights neither ever sees a stale copy. One layer's weights are in flight at a time.

import type { InputGroup, TensorInfo } from '../../contract/api'
import { INPUT_GROUP, accumulateInput, emptyInputStats, finishHessian, type InputStats } from '../calibration/capture'
import { tensorName } from '../arch'
import { WhittleError } from '../errors'
import { cancellationPoint, throwIfCancelled } from '../jobs/cancel'
import { readTensorF32 } from '../formats/read'
import { createForward } from '../forward'
import { RECORDING_ROLES, type CausalLM, type LinearRole } from '../forward/causal-lm'
import type { LoadedModel } from '../model/loaded-model'
import { REPLACEMENT_MEMORY_BUDGET, withReplacements, type ModelView } from '../model/model-view'
import type { WorkerPool } from '../pool/worker-pool'
import { KernelHessian } from './linalg/kernels'
import { getMethod } from './methods'
import type { CompressionMethod, GroupContext, LinearOutcome, LinearToCompress } from './methods/method'
import { relativeError } from './measures'
import { runStructureStep } from './structure/structure-step'
import { checkNm, maskThumbnail, zeroFraction, type MaskThumbnail, type NmVerdict } from './prune/sparsity'
import type { UniformGridRecord } from './quant/record'
import type { Recipe, RecipeStep } from './recipe/recipe'
import { overrideFor, selectTargets } from './recipe/targets'

export interface TensorOutcome extends Omit<LinearOutcome, 'record' | 'nm' | 'inputScale'> {
  step: number
  method: string
  layer: number
  role: string
  shape: [number, number]
  /** ‖W − Ŵ‖_F / ‖W‖_F */
  relWeightError: number
  /** ‖X(W − Ŵ)ᵀ‖_F / ‖XWᵀ‖_F on a sample of calibration inputs; null without calibration. */
  relOutputError: number | null
  /** Fraction of zero weights after the step. */
  sparsity: number
  /** The validator's verdict when the method imposed an N:M pattern. */
  nm?: NmVerdict
  /** Pruning methods: the mask's density, down-sampled. */
  mask?: MaskThumbnail
}

export interface PipelineOptions {
  /** Calibration windows; required when a step's method needs calibration. */
  windows?: Int32Array[]
  signal?: AbortSignal
  onProgress?: (fraction: number, message: string) => void
  /** Called after each step with the view as it stands (e.g. to measure perplexity per step). */
  afterStep?: (step: number, view: ModelView) => Promise<void>
}

export interface PipelineResult {
  view: ModelView
  tensors: TensorOutcome[]
  /**
   * The quantization grids behind each tensor whose last step was a uniform quantizer (RTN, GPTQ, AWQ):
   * packed exports derive integer codes from them. A later step that changes a tensor drops its record.
   */
  records: Map<string, UniformGridRecord>
  seconds: number
}

/** Ŵ·diag(1/s): the weight as the unscaled input sees it, when a method folded s into the producer. */
function effectiveWeight(W: Float32Array, cols: number, s?: Float32Array): Float32Array {
  if (!s) return W
  return W.map((v, i) => v / s[i % cols])
}

/** A K×K accumulator in kernel memory, or null when kernel memory cannot hold one. */
function kernelHessianOrNull(pool: WorkerPool, K: number): KernelHessian | null {
  try {
    return new KernelHessian(pool, K)
  } catch (e) {
    if (e instanceof WhittleError && e.code === 'out-of-memory') return null
    throw e
  }
}

/** Calibration rows kept per input for the output-error measure. */
const OUTPUT_SAMPLE_ROWS = 256

interface Sampled extends InputStats {
  sample: Float32Array
  sampleRows: number
}

function newStats(K: number, hessian: boolean, tokens: number): Sampled {
  return { ...emptyInputStats(K, hessian), sample: new Float32Array(Math.min(OUTPUT_SAMPLE_ROWS, tokens) * K), sampleRows: 0 }
}


/**
 * ‖XWᵀ − (X/s)Ŵᵀ‖ / ‖XWᵀ‖ over the sampled rows of X (s = 1 unless the method folded a scale). Seconds of
 * main-thread work on a 1.1B model's Linears, so it lets a cancel in between rows.
 */
async function relativeOutputError(s: Sampled, W: Float32Array, Q: Float32Array, rows: number, cols: number, inputScale?: Float32Array): Promise<number> {
  let num = 0, den = 0
  const xs = new Float32Array(cols)
  for (let t = 0; t < s.sampleRows; t++) {
    await cancellationPoint()
    const x = s.sample.subarray(t * cols, (t + 1) * cols)
    for (let c = 0; c < cols; c++) xs[c] = inputScale ? x[c] / inputScale[c] : x[c]
    for (let r = 0; r < rows; r++) {
      let y = 0, yq = 0
      const row = r * cols
      for (let c = 0; c < cols; c++) {
        y += x[c] * W[row + c]
        yq += xs[c] * Q[row + c]
      }
      num += (y - yq) ** 2
      den += y * y
    }
  }
  return den > 0 ? Math.sqrt(num / den) : 0
}

interface Planned {
  info: TensorInfo
  params: unknown
}

function planStep(model: LoadedModel, step: RecipeStep, method: CompressionMethod, recipe: Recipe, index: number): Map<number, Map<InputGroup, Planned[]>> {
  const byLayer = new Map<number, Map<InputGroup, Planned[]>>()
  for (const info of selectTargets(model.tensors, step.targets)) {
    const group = INPUT_GROUP[info.role as LinearRole]
    if (!group) continue
    const params = method.parseParams({ ...step.params, ...overrideFor(info.name, recipe.overrides) }, `recipe step ${index + 1} (${step.method}) for ${info.name}`)
    const layer = info.layer!
    if (!byLayer.has(layer)) byLayer.set(layer, new Map())
    const groups = byLayer.get(layer)!
    if (!groups.has(group)) groups.set(group, [])
    groups.get(group)!.push({ info, params })
  }
  return byLayer
}

export async function runRecipe(pool: WorkerPool, model: LoadedModel, recipe: Recipe, options: PipelineOptions = {}): Promise<PipelineResult> {
  const started = performance.now()
  let view = withReplacements(model)
  const tensors: TensorOutcome[] = []
  let records = new Map<string, UniformGridRecord>()
  for (const [index, step] of recipe.steps.entries()) {
    const method = getMethod(step.method, `step ${index + 1}`)
    if (method.restructure) {
      // Structural steps act on the whole model and may return a smaller one: later steps plan on it.
      const r = await runStructureStep(pool, view, method, step, index, recipe.steps.length, options)
      view = r.view
      tensors.push(...r.tensors)
      records = r.records(records)
      await options.afterStep?.(index, view)
      continue
    }
    const L = view.arch.layers
    const plan = planStep(view, step, method, recipe, index)
    if (plan.size === 0) throw new WhittleError('validation', null, `recipe step ${index + 1} (${step.method}) matches no Linear weight`)
    if (method.prepareStep) {
      const targets = [...plan.values()].flatMap((groups) => [...groups.values()].flat()).map(({ info, params }) => ({
        name: info.name, rows: info.shape[0], cols: info.shape[1], params, read: () => readTensorF32(view.entry(info.name)),
      }))
      await method.prepareStep(targets)
    }
    const needsCalibration = method.needs.calibration
    if (needsCalibration && !options.windows?.length) throw new WhittleError('validation', null, `recipe step ${index + 1} (${step.method}) needs calibration windows`)
    const progress = (layer: number, what: string): void =>
      options.onProgress?.((index + (layer + 1) / L) / recipe.steps.length, `step ${index + 1}/${recipe.steps.length} ${step.method}: layer ${layer + 1}/${L} ${what}`)

    const compressLayer = async (layer: number, stats: Map<InputGroup, Sampled> | null): Promise<void> => {
      const groups: GroupContext[] = []
      const originals = new Map<string, Float32Array>()
      for (const [group, planned] of plan.get(layer) ?? []) {
        const linears: LinearToCompress[] = []
        for (const { info, params } of planned) {
          const weight = await readTensorF32(view.entry(info.name))
          originals.set(info.name, weight.slice())
          linears.push({ name: info.name, role: info.role, layer, rows: info.shape[0], cols: info.shape[1], weight, params })
        }
        groups.push({ layer, group, linears, input: stats?.get(group) ?? null, pool })
      }
      let outcomes: LinearOutcome[]
      if (method.compressLayer) {
        outcomes = await method.compressLayer({
          layer, groups, pool,
          read: async (role) => {
            const name = tensorName(view.arch, layer, role)
            return name ? readTensorF32(view.entry(name)) : null
          },
          write: (role, values) => {
            const name = tensorName(view.arch, layer, role)
            if (!name) throw new WhittleError('not-found', view.files.path, `layer ${layer} has no ${role} tensor to rewrite`)
            view.replace(name, values)
            records.delete(name)
          },
        })
      } else {
        outcomes = []
        for (const g of groups) outcomes.push(...(await method.compressGroup(g)))
      }
      for (const g of groups) {
        for (const l of g.linears) {
          view.replace(l.name, l.weight)
          const o = outcomes.find((x) => x.name === l.name)
          if (!o) throw new Error(`${step.method} reported no outcome for ${l.name}`)
          const original = originals.get(l.name)!
          const { inputScale: _scale, record, nm, ...outcome } = o
          const relOutputError = g.input ? await relativeOutputError(g.input as Sampled, original, l.weight, l.rows, l.cols, o.inputScale) : null
          if (record) records.set(l.name, record)
          else records.delete(l.name)
          tensors.push({
            ...outcome, step: index, method: step.method, layer, role: l.role, shape: [l.rows, l.cols],
            relWeightError: relativeError(original, effectiveWeight(l.weight, l.cols, o.inputScale)),
            relOutputError,
            sparsity: zeroFraction(l.weight),
            ...(nm ? { nm: checkNm(l.weight, l.rows, l.cols, nm.n, nm.m) } : {}),
            ...(method.kind === 'prune' ? { mask: maskThumbnail(l.weight, l.rows, l.cols) } : {}),
          })
        }
      }
    }

    if (!needsCalibration) {
      for (let layer = 0; layer < L; layer++) {
        throwIfCancelled(options.signal)
        await compressLayer(layer, null)
        await view.spillIfOver(REPLACEMENT_MEMORY_BUDGET)
        progress(layer, 'done')
      }
    } else {
      const windows = options.windows!
      const T = windows[0].length
      const original = await createForward(pool, view)
      const compressed = await createForward(pool, view)
      try {
        const hidden = await original.embed(windows)
        const sequential = method.needs.sequential !== false
        const captureLayer = async (forward: CausalLM, layer: number, input: Float32Array): Promise<Map<InputGroup, Sampled>> => {
          const stats = new Map<InputGroup, Sampled>()
          const tokens = input.length / view.arch.hiddenSize
          const stride = Math.max(1, Math.floor(tokens / OUTPUT_SAMPLE_ROWS))
          // Hessians accumulate in kernel memory on the pool's workers, one accumulator per group; a
          // group whose K×K matrix does not fit there falls back to accumulateInput's JS loop.
          const accumulators = new Map<InputGroup, KernelHessian>()
          const adds: Promise<void>[] = []
          try {
            await forward.block(layer, input, T, {
              linearInput(_l, role, x, M, K) {
                const group = INPUT_GROUP[role]
                // Linears sharing an input see the same tensor: record it once, from the group's first reader.
                if (!RECORDING_ROLES.has(role) || !plan.get(layer)!.has(group)) return
                let s = stats.get(group)
                if (!s) {
                  const accumulator = method.needs.hessian ? kernelHessianOrNull(pool, K) : null
                  if (accumulator) accumulators.set(group, accumulator)
                  stats.set(group, (s = newStats(K, method.needs.hessian && !accumulator, tokens)))
                }
                accumulateInput(s, x, M, K)
                // x is only valid during this call, and add() reads it later: give it a copy.
                const accumulator = accumulators.get(group)
                if (accumulator) adds.push(accumulator.add(x.slice(0, M * K), M))
                for (let t = 0; t < M && s.sampleRows < s.sample.length / K; t += stride) {
                  s.sample.set(x.subarray(t * K, (t + 1) * K), s.sampleRows * K)
                  s.sampleRows++
                }
              },
            })
            await Promise.all(adds)
            for (const [group, accumulator] of accumulators) stats.get(group)!.hessian = accumulator.toArray()
          } finally {
            // Settle every add (so none rejects unobserved) before the memory goes back.
            await Promise.allSettled(adds)
            for (const accumulator of accumulators.values()) accumulator.free()
          }
          for (const [group, s] of stats) {
            s.windows = windows.length
            if (!accumulators.has(group)) finishHessian(s)
          }
          return stats
        }
        // Non-sequential methods take every layer's statistics from the original model first.
        let upfront: Map<number, Map<InputGroup, Sampled>> | null = null
        if (!sequential) {
          upfront = new Map()
          const h = hidden.slice()
          for (let layer = 0; layer < L; layer++) {
            throwIfCancelled(options.signal)
            upfront.set(layer, await captureLayer(original, layer, h))
            progress(layer, 'calibration')
          }
        }
        // Layers after the last target need no inputs: the compressed pass stops there.
        const lastTarget = Math.max(...plan.keys())
        for (let layer = 0; layer <= lastTarget; layer++) {
          throwIfCancelled(options.signal)
          if (plan.has(layer)) {
            const stats = sequential ? await captureLayer(original, layer, hidden.slice()) : upfront!.get(layer)!
            progress(layer, 'compressing')
            await compressLayer(layer, stats)
          }
          if (layer < lastTarget) await compressed.block(layer, hidden, T)
          await view.spillIfOver(REPLACEMENT_MEMORY_BUDGET)
          progress(layer, 'done')
        }
        if (lastTarget < L - 1) progress(L - 1, 'done')
      } finally {
        original.close()
        compressed.close()
      }
    }
    if (method.runtime) view.runtime = method.runtime
    await options.afterStep?.(index, view)
  }
  return { view, tensors, records, seconds: (performance.now() - started) / 1000 }
}
