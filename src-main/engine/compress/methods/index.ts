// The registry of compression methods: one file per method, all behind CompressionMethod. The
// catalogue (name, kind, summary, parameter specs) is read off the methods themselves.

import type { MethodInfo } from '../../../contract/method-params'
import { WhittleError } from '../../errors'
import { awq } from './awq'
import { bitnet } from './bitnet'
import { bonsai } from './bonsai'
import { cofi } from './cofi'
import { distill } from './distill'
import { dropLayers } from './drop-layers'
import { fp8 } from './fp8'
import { gguf } from './gguf'
import { gobo } from './gobo'
import { gptq } from './gptq'
import { gptvq } from './gptvq'
import { llmInt8 } from './llm-int8'
import { lowRank } from './low-rank'
import { lora } from './lora'
import { magnitude } from './magnitude'
import type { CompressionMethod } from './method'
import { nf4 } from './nf4'
import { pbLlm } from './pb-llm'
import { pruneHeads } from './prune-heads'
import { rtn } from './rtn'
import { slicegpt } from './slicegpt'
import { smoothquant } from './smoothquant'
import { sparsegpt } from './sparsegpt'
import { squeezellm } from './squeezellm'
import { wanda } from './wanda'

const METHODS: Record<string, CompressionMethod<never>> = {
  rtn: rtn as CompressionMethod<never>,
  gptq: gptq as CompressionMethod<never>,
  gptvq: gptvq as CompressionMethod<never>,
  gguf: gguf as CompressionMethod<never>,
  awq: awq as CompressionMethod<never>,
  llm_int8: llmInt8 as CompressionMethod<never>,
  nf4: nf4 as CompressionMethod<never>,
  bitnet: bitnet as CompressionMethod<never>,
  pb_llm: pbLlm as CompressionMethod<never>,
  fp8: fp8 as CompressionMethod<never>,
  squeezellm: squeezellm as CompressionMethod<never>,
  gobo: gobo as CompressionMethod<never>,
  smoothquant: smoothquant as CompressionMethod<never>,
  magnitude: magnitude as CompressionMethod<never>,
  wanda: wanda as CompressionMethod<never>,
  sparsegpt: sparsegpt as CompressionMethod<never>,
  prune_heads: pruneHeads as CompressionMethod<never>,
  drop_layers: dropLayers as CompressionMethod<never>,
  slicegpt: slicegpt as CompressionMethod<never>,
  bonsai: bonsai as CompressionMethod<never>,
  cofi: cofi as CompressionMethod<never>,
  low_rank: lowRank as CompressionMethod<never>,
  distill: distill as CompressionMethod<never>,
  lora: lora as CompressionMethod<never>,
}

export function methodNames(): string[] {
  return Object.keys(METHODS)
}

export function getMethod(name: string, where: string): CompressionMethod<unknown> {
  const m = METHODS[name]
  if (!m)
    throw new WhittleError(
      'validation',
      null,
      `recipe ${where}: unknown method "${name}" (known: ${methodNames().join(', ')})`,
    )
  return m as CompressionMethod<unknown>
}

/** Every method with its parameter spec, in registry order: what the UI, `--help-method` and the README test read. */
export function methodCatalogue(): MethodInfo[] {
  return Object.values(METHODS).map((m) => ({
    name: m.name,
    kind: m.kind,
    summary: m.summary,
    needsCalibration: m.needs.calibration,
    params: m.params,
  }))
}

/** One method's catalogue entry, or undefined for an unknown name. */
export function methodInfo(name: string): MethodInfo | undefined {
  return methodCatalogue().find((m) => m.name === name)
}
