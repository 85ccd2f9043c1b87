import { describe, expect, it } from 'vitest'
import type { RecipeDoc, TensorInfo, TensorRole } from '@contract/api'
import {
  addStep,
  effectiveParams,
  exactNamePattern,
  extraParams,
  formParamSpecs,
  isCompressible,
  methodChoices,
  methodsOfKind,
  moduleName,
  moveStep,
  paramDefault,
  paramLabel,
  parseParamsJson,
  patternsFromText,
  pickedNames,
  removeOverride,
  removeStep,
  sameRecipe,
  setCalibration,
  setExtraParams,
  setOverrideBits,
  setStepMethod,
  setStepParam,
  setStepTargets,
  stepTargets,
  takesBits,
  toggleTarget,
} from './recipe-edit'
import { TEST_CATALOGUE as C } from '../testing/method-catalogue'

function info(name: string, role: TensorRole, layer: number | null, shape: number[] = [8, 8]): TensorInfo {
  return { name, role, layer, shape, dtype: 'F32', byteLength: 4 * shape.reduce((a, b) => a * b, 1) }
}

const tensors: TensorInfo[] = [
  info('model.embed_tokens.weight', 'embed', null),
  info('model.layers.1.input_layernorm.weight', 'attn_norm', 1, [8]),
  info('model.layers.1.self_attn.q_proj.weight', 'q', 1),
  info('model.layers.1.mlp.down_proj.weight', 'down', 1),
  info('model.layers.10.self_attn.q_proj.weight', 'q', 10),
  info('model.layers.10.mlp.down_proj.weight', 'down', 10),
  info('lm_head.weight', 'lm_head', null),
]

const gptqRecipe = (): RecipeDoc => ({
  calibration: { samples: 128, seqlen: 256, seed: 0, starts: [0, 5] },
  steps: [
    {
      method: 'gptq',
      targets: { include: [], exclude: [] },
      params: { bits: 4, group_size: 128, damp: 0.01, act_order: true },
    },
  ],
})

describe('exact-name targets', () => {
  it('match their tensor and nothing else, dots and brackets included', () => {
    const re = new RegExp(exactNamePattern('model.layers.1.mlp.down_proj.weight'))
    expect(re.test('model.layers.1.mlp.down_proj.weight')).toBe(true)
    expect(re.test('model.layers.10.mlp.down_proj.weight')).toBe(false)
    expect(re.test('model_layers_1_mlp_down_proj_weight')).toBe(false)
    expect(re.test('x.model.layers.1.mlp.down_proj.weight')).toBe(false)
    const odd = 'blk(1)+[a]*.w$eight?'
    expect(new RegExp(exactNamePattern(odd)).test(odd)).toBe(true)
    expect(new RegExp(exactNamePattern(odd)).test('blk1a.weight')).toBe(false)
  })

  it('toggle in and out of include without touching the input recipe', () => {
    const r0 = gptqRecipe()
    const name = 'model.layers.1.self_attn.q_proj.weight'
    const r1 = toggleTarget(r0, 0, name)
    expect(r0.steps[0].targets!.include).toEqual([])
    expect(r1.steps[0].targets!.include).toEqual(['^model\\.layers\\.1\\.self_attn\\.q_proj\\.weight$'])
    expect(pickedNames(r1.steps[0], tensors)).toEqual(new Set([name]))
    const r2 = toggleTarget(r1, 0, name)
    expect(r2.steps[0].targets!.include).toEqual([])
  })

  it('a click on an excluded tensor brings it back', () => {
    const name = 'model.layers.1.mlp.down_proj.weight'
    const r = setStepTargets(gptqRecipe(), 0, 'exclude', [exactNamePattern(name), 'k_proj'])
    const t = toggleTarget(r, 0, name).steps[0].targets!
    expect(t.include).toEqual([exactNamePattern(name)])
    expect(t.exclude).toEqual(['k_proj'])
  })
})

describe('which tensors a step compresses', () => {
  it('takes every Linear in the blocks when include is empty, never norms, embeddings or lm_head', () => {
    expect(tensors.filter(isCompressible).map((t) => t.name)).toEqual([
      'model.layers.1.self_attn.q_proj.weight',
      'model.layers.1.mlp.down_proj.weight',
      'model.layers.10.self_attn.q_proj.weight',
      'model.layers.10.mlp.down_proj.weight',
    ])
    const all = stepTargets(gptqRecipe().steps[0], tensors)
    expect('tensors' in all && all.tensors).toHaveLength(4)
  })

  it('searches include patterns anywhere in the name and applies exclude after', () => {
    let r = setStepTargets(gptqRecipe(), 0, 'include', ['down_proj', 'layers\\.10\\.'])
    r = setStepTargets(r, 0, 'exclude', ['layers\\.1\\.'])
    const got = stepTargets(r.steps[0], tensors)
    expect('tensors' in got && got.tensors.map((t) => t.name)).toEqual([
      'model.layers.10.self_attn.q_proj.weight',
      'model.layers.10.mlp.down_proj.weight',
    ])
  })

  it('reports a pattern that is not a regular expression', () => {
    const r = setStepTargets(gptqRecipe(), 0, 'include', ['layers.(1'])
    expect(stepTargets(r.steps[0], tensors)).toHaveProperty('error')
  })

  it('reads one pattern per line', () => {
    expect(patternsFromText(' q_proj \n\n  down_proj\n')).toEqual(['q_proj', 'down_proj'])
  })
})

describe('step params', () => {
  it('keeps what two methods share when the method changes, drops the rest', () => {
    const r = setStepMethod(C, gptqRecipe(), 0, 'rtn')
    expect(r.steps[0]).toMatchObject({ method: 'rtn', params: { bits: 4, group_size: 128 } })
    expect(r.steps[0].params).not.toHaveProperty('damp')
    expect(r.steps[0].params).not.toHaveProperty('act_order')
    // A method the catalogue does not know keeps every param (the engine says what it refuses).
    expect(setStepMethod(C, gptqRecipe(), 0, 'spinquant').steps[0].params).toEqual(gptqRecipe().steps[0].params)
  })

  it('sets and removes one param', () => {
    const r = setStepParam(gptqRecipe(), 0, 'bits', 3)
    expect(r.steps[0].params!.bits).toBe(3)
    expect(setStepParam(r, 0, 'damp', undefined).steps[0].params).not.toHaveProperty('damp')
    expect(setStepParam(r, 5, 'bits', 2)).toBe(r)
  })

  it('edits unknown params as JSON beside the known ones', () => {
    const r = setStepParam(setStepMethod(C, gptqRecipe(), 0, 'rtn'), 0, 'n_grid', 20)
    expect(extraParams(C, r.steps[0])).toEqual({ n_grid: 20 })
    const r2 = setExtraParams(C, r, 0, { duo_scaling: true, bits: 99 })
    // A known key typed into the JSON is taken, not silently dropped (its input then shows it, and the
    // engine's check says that 99 bits is out of range).
    expect(r2.steps[0].params).toEqual({ bits: 99, group_size: 128, duo_scaling: true })
    expect(parseParamsJson('{"a": 1}')).toEqual({ ok: true, value: { a: 1 } })
    expect(parseParamsJson('')).toEqual({ ok: true, value: {} })
    expect(parseParamsJson('[1]')).toMatchObject({ ok: false })
    expect(parseParamsJson('{a: 1}')).toMatchObject({ ok: false })
  })

  it("offers the catalogue's methods and any other a recipe uses", () => {
    const r: RecipeDoc = { steps: [{ method: 'lowrank_experimental' }, { method: 'gptq' }] }
    const names = methodChoices(C, r)
    expect(names).toEqual([...C.map((m) => m.name), 'lowrank_experimental'])
    expect(methodsOfKind(C, 'prune')).toEqual(['magnitude', 'wanda', 'sparsegpt'])
  })

  it('builds inputs from the catalogue: scalars get inputs, lists stay in the JSON field', () => {
    expect(formParamSpecs(C, 'drop_layers').map((p) => p.name)).toEqual(['count'])
    const step = { method: 'drop_layers', params: { count: 2, layers: [1, 3] } }
    expect(extraParams(C, step)).toEqual({ layers: [1, 3] })
    // Every param the catalogue declares is offered, scale_dtype and sparsegpt's joint-quantization bits included.
    expect(formParamSpecs(C, 'gptq').map((p) => p.name)).toContain('scale_dtype')
    expect(formParamSpecs(C, 'sparsegpt').map((p) => p.name)).toEqual(
      expect.arrayContaining(['bits', 'group_size', 'sym']),
    )
    expect(paramLabel(C[0].params[1])).toBe('group size')
  })

  it('reads defaults per method, and absent-unless-given params have none', () => {
    expect(paramDefault(C, 'awq', 'group_size')).toBe(128)
    expect(paramDefault(C, 'rtn', 'group_size')).toBe(-1)
    expect(paramDefault(C, 'sparsegpt', 'bits')).toBeUndefined()
    expect(paramDefault(C, 'spinquant', 'bits')).toBeUndefined()
    expect(takesBits(C, 'gptq')).toBe(true)
    expect(takesBits(C, 'wanda')).toBe(false)
    expect(takesBits([], 'gptq')).toBe(false)
  })
})

describe('steps', () => {
  it('adds, moves and removes steps, always keeping one', () => {
    let r = addStep(gptqRecipe(), 'rtn')
    expect(r.steps.map((s) => s.method)).toEqual(['gptq', 'rtn'])
    r = moveStep(r, 1, -1)
    expect(r.steps.map((s) => s.method)).toEqual(['rtn', 'gptq'])
    expect(moveStep(r, 0, -1)).toBe(r)
    expect(moveStep(r, 1, 1)).toBe(r)
    r = removeStep(r, 0)
    expect(r.steps.map((s) => s.method)).toEqual(['gptq'])
    expect(removeStep(r, 0)).toBe(r)
  })
})

describe('overrides', () => {
  it('use module names, merged in order with suffix keys as the engine does', () => {
    expect(moduleName('model.layers.1.mlp.down_proj.weight')).toBe('model.layers.1.mlp.down_proj')
    const r: RecipeDoc = {
      ...gptqRecipe(),
      overrides: {
        'mlp.down_proj': { bits: 8, sym: true },
        'layers.1.mlp.down_proj': { bits: 3 },
        up_proj: { bits: 2 },
      },
    }
    expect(effectiveParams(r, 0, 'model.layers.1.mlp.down_proj.weight')).toMatchObject({
      bits: 3,
      sym: true,
      group_size: 128,
    })
    expect(effectiveParams(r, 0, 'model.layers.10.mlp.down_proj.weight')).toMatchObject({ bits: 8 })
    // 'up_proj' is not a dotted suffix of 'gate_up_proj'.
    expect(effectiveParams(r, 0, 'model.layers.1.mlp.gate_up_proj.weight').bits).toBe(4)
  })

  it('sets bits so they win over broader keys, and removes them again', () => {
    const base: RecipeDoc = {
      ...gptqRecipe(),
      overrides: { 'model.layers.1.mlp.down_proj': { sym: true }, down_proj: { bits: 8 } },
    }
    const r = setOverrideBits(base, 'model.layers.1.mlp.down_proj', 3)
    expect(Object.keys(r.overrides!)).toEqual(['down_proj', 'model.layers.1.mlp.down_proj'])
    expect(effectiveParams(r, 0, 'model.layers.1.mlp.down_proj.weight')).toMatchObject({ bits: 3, sym: true })
    const cleared = setOverrideBits(r, 'model.layers.1.mlp.down_proj', null)
    expect(cleared.overrides!['model.layers.1.mlp.down_proj']).toEqual({ sym: true })
    const gone = removeOverride(removeOverride(cleared, 'model.layers.1.mlp.down_proj'), 'down_proj')
    expect(gone).not.toHaveProperty('overrides')
    expect(base.overrides!['model.layers.1.mlp.down_proj']).toEqual({ sym: true })
  })
})

describe('calibration', () => {
  it('sets and clears fields; a typed sample count replaces fixed starts', () => {
    const r = setCalibration(gptqRecipe(), 'samples', 16)
    expect(r.calibration).toEqual({ samples: 16, seqlen: 256, seed: 0 })
    expect(setCalibration(r, 'seed', undefined).calibration).toEqual({ samples: 16, seqlen: 256 })
    expect(setCalibration({ steps: [] }, 'text', '').calibration).toBeUndefined()
  })
})

describe('comparing recipes', () => {
  it('reads absent parts as empty and ignores key order, but sees every real change', () => {
    const a: RecipeDoc = {
      steps: [{ method: 'rtn', targets: { include: [], exclude: [] }, params: { bits: 4, sym: false } }],
      overrides: {},
    }
    const b: RecipeDoc = { steps: [{ method: 'rtn', params: { sym: false, bits: 4 } }] }
    expect(sameRecipe(a, b)).toBe(true)
    expect(sameRecipe(a, toggleTarget(toggleTarget(a, 0, 'w'), 0, 'w'))).toBe(true)
    expect(sameRecipe(a, setStepParam(a, 0, 'bits', 3))).toBe(false)
    expect(sameRecipe(a, toggleTarget(a, 0, 'w'))).toBe(false)
    expect(sameRecipe(a, setOverrideBits(a, 'm', 8))).toBe(false)
    expect(sameRecipe(a, setCalibration(a, 'seed', 1))).toBe(false)
  })
})
