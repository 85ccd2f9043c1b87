// ParamReader against the methods' declared specs: every declared parameter is read by its method
// (and nothing undeclared is), defaults come from the spec, and bad values fail naming step and field.

import { describe, expect, it } from 'vitest'
import { intParam, type ParamSpec } from '../../../contract/method-params'
import { WhittleError } from '../../errors'
import { getMethod, methodCatalogue, methodNames } from './index'
import { ParamReader } from './params'

/** Params a method needs before it accepts anything (one of two alternatives must be given). */
const REQUIRED: Record<string, Record<string, unknown>> = { drop_layers: { count: 1 }, prune_heads: { count: 1 } }

/** A valid value for a param whose default is absent. */
function sample(p: ParamSpec): unknown {
  switch (p.type) {
    case 'int':
    case 'number':
      return p.default ?? p.min
    case 'bool':
      return !p.default
    case 'choice':
      return p.choices[p.choices.length - 1]
    case 'string':
      return p.suggestions?.[0] ?? 'some text'
    case 'index_list':
      return [0]
    case 'index_map':
      return { 0: [0] }
    case 'object':
      return {}
  }
}

/** Params that exclude another one given in REQUIRED (the method's own rules, tested in its file). */
const SKIP = new Set(['drop_layers.layers', 'prune_heads.heads'])

/** Params that apply only beside another (the method's own rules, tested in its file). */
const NEEDS: Record<string, Record<string, unknown>> = {
  'gptq.static_groups': { group_size: 32 },
  'sparsegpt.group_size': { bits: 4 },
  'sparsegpt.sym': { bits: 4 },
  'sparsegpt.scale_dtype': { bits: 4 },
  'distill.lora': { trainable: 'lora' },
  'distill.eval_every': { eval_text: 'eval.txt' },
  'cofi.uniform': { finetune: 0 },
}

function validationError(f: () => unknown): WhittleError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(WhittleError)
    expect((e as WhittleError).code).toBe('validation')
    return e as WhittleError
  }
  throw new Error('expected a validation error')
}

describe('method parameter specs', () => {
  it('the catalogue lists every registered method once, each with a summary and unique param names', () => {
    const cat = methodCatalogue()
    expect(cat.map((m) => m.name)).toEqual(methodNames())
    for (const m of cat) {
      expect(m.summary.length, m.name).toBeGreaterThan(10)
      expect(new Set(m.params.map((p) => p.name)).size, m.name).toBe(m.params.length)
      for (const p of m.params) expect(p.help.length, `${m.name}.${p.name}`).toBeGreaterThan(5)
    }
  })

  it('every declared parameter is accepted by its method (the spec and parseParams agree)', () => {
    for (const m of methodCatalogue()) {
      const method = getMethod(m.name, 'step 1')
      for (const p of m.params) {
        if (SKIP.has(`${m.name}.${p.name}`)) continue
        const raw = { ...(REQUIRED[m.name] ?? {}), ...(NEEDS[`${m.name}.${p.name}`] ?? {}), [p.name]: sample(p) }
        expect(() => method.parseParams(raw, `recipe step 1 (${m.name})`), `${m.name}.${p.name}`).not.toThrow()
      }
    }
  })

  it('unknown names, out-of-range numbers and bad choices fail naming the step, method and field', () => {
    for (const m of methodCatalogue()) {
      const method = getMethod(m.name, 'step 1')
      const where = `recipe step 2 (${m.name})`
      const base = REQUIRED[m.name] ?? {}
      expect(validationError(() => method.parseParams({ ...base, no_such_param: 1 }, where)).message).toBe(
        `${where}: params.no_such_param is not a parameter of this method`,
      )
      for (const p of m.params) {
        if (p.type === 'int' || p.type === 'number') {
          const e = validationError(() => method.parseParams({ ...base, [p.name]: p.max * 2 + 1 }, where))
          expect(e.message, `${m.name}.${p.name}`).toContain(
            `${where}: params.${p.name} must be ${p.type === 'int' ? 'an integer' : 'a number'} in [${p.min}, `,
          )
        }
        if (p.type === 'choice') {
          const e = validationError(() => method.parseParams({ ...base, [p.name]: 'nonsense' }, where))
          expect(e.message).toBe(`${where}: params.${p.name} must be one of ${p.choices.join(', ')} (got "nonsense")`)
        }
        if (p.type === 'bool')
          expect(validationError(() => method.parseParams({ ...base, [p.name]: 'yes' }, where)).message).toContain(
            `params.${p.name} must be true or false`,
          )
      }
    }
  })

  it('defaults come from the spec', () => {
    expect(getMethod('rtn', 's').parseParams({}, 's')).toEqual({
      bits: 4,
      groupSize: -1,
      sym: false,
      scaleDtype: 'f16',
    })
    expect(getMethod('awq', 's').parseParams({}, 's')).toMatchObject({ bits: 4, groupSize: 128, grid: 20 })
    expect(getMethod('gptq', 's').parseParams({}, 's')).toMatchObject({
      damp: 0.01,
      blockSize: 128,
      actOrder: false,
      preserveZeros: true,
    })
  })

  it('a method reading a parameter its spec lacks, or as another type, is a programming error', () => {
    const r = new ParamReader({}, 'step', [intParam('bits', 4, 2, 8, 'Code width')])
    expect(r.int('bits')).toBe(4)
    expect(() => r.num('bits')).toThrow(/reads params.bits as number, but its spec declares int/)
    expect(() => r.bool('sym')).toThrow(/reads params.sym as bool, but its spec lacks it/)
  })

  it('a spec without a default makes the parameter optional (null), and a given fallback replaces the default', () => {
    const specs = [intParam('count', null, 1, 10, 'How many'), intParam('micro', 8, 1, 64, 'Per pass')]
    expect(new ParamReader({}, 's', specs).optInt('count')).toBeNull()
    expect(new ParamReader({ count: 3 }, 's', specs).optInt('count')).toBe(3)
    expect(new ParamReader({}, 's', specs).int('micro', 5)).toBe(5)
    expect(new ParamReader({ micro: 2 }, 's', specs).int('micro', 5)).toBe(2)
    expect(validationError(() => new ParamReader({}, 'recipe step 1 (x)', specs).int('count')).message).toBe(
      'recipe step 1 (x): params.count is required',
    )
  })
})
