// A method catalogue for renderer tests: a few methods shaped as the engine's listMethods() answers
// (the real specs live beside each method in src-main/engine/compress/methods/). It covers what the
// renderer's logic branches on: a uniform quantizer with bits and a per-method group_size default, a
// pruner with a scope, a pruner with optional joint-quantization bits, and a structural method whose
// params are lists (edited as JSON, not as inputs).

import {
  boolParam,
  choiceParam,
  indexListParam,
  intParam,
  numberParam,
  stringParam,
  type MethodInfo,
  type ParamSpec,
} from '@contract/method-params'

function uniform(groupSize: number, bits: number | null = 4): ParamSpec[] {
  return [
    intParam('bits', bits, 2, 8, 'Code width per weight'),
    intParam(
      'group_size',
      groupSize,
      -1,
      1 << 20,
      'Input columns sharing one scale and zero point; -1 = one grid per output row',
    ),
    boolParam('sym', false, 'Symmetric grid (no zero point)'),
    choiceParam('scale_dtype', 'f16', ['f16', 'f32'], 'Precision of the stored scales'),
  ]
}

const PRUNE: ParamSpec[] = [
  numberParam('sparsity', 0.5, 0, 0.999, 'Fraction of weights set to zero', 0.05),
  stringParam('pattern', 'Keep N of every M consecutive inputs', ['unstructured', '2:4', '4:8'], 'unstructured'),
]

export const TEST_CATALOGUE: readonly MethodInfo[] = [
  { name: 'rtn', kind: 'quantize', summary: 'Round-to-nearest', needsCalibration: false, params: uniform(-1) },
  {
    name: 'gptq',
    kind: 'quantize',
    summary: 'GPTQ',
    needsCalibration: true,
    params: [
      ...uniform(-1),
      numberParam('damp', 0.01, 0, 10, 'Hessian dampening'),
      boolParam('act_order', false, 'Act-order'),
      boolParam('preserve_zeros', true, 'Keep zeros'),
    ],
  },
  {
    name: 'awq',
    kind: 'quantize',
    summary: 'AWQ',
    needsCalibration: true,
    params: [...uniform(128), intParam('grid', 20, 1, 1000, 'Search points')],
  },
  {
    name: 'magnitude',
    kind: 'prune',
    summary: 'Smallest |w|',
    needsCalibration: false,
    params: [...PRUNE, choiceParam('scope', 'layer', ['layer', 'row', 'global'], 'Threshold scope')],
  },
  { name: 'wanda', kind: 'prune', summary: 'Wanda', needsCalibration: true, params: PRUNE },
  {
    name: 'sparsegpt',
    kind: 'prune',
    summary: 'SparseGPT',
    needsCalibration: true,
    params: [
      ...PRUNE,
      numberParam('damp', 0.01, 0, 10, 'Hessian dampening'),
      intParam('block_size', 128, 1, 1 << 16, 'Block'),
      ...uniform(-1, null),
    ],
  },
  {
    name: 'drop_layers',
    kind: 'structure',
    summary: 'Drop decoder blocks',
    needsCalibration: true,
    params: [intParam('count', null, 1, 1 << 16, 'How many'), indexListParam('layers', 'Which')],
  },
]
