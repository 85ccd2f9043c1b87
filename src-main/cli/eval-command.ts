// `whittle eval MODEL --text FILE [--seqlen 256] [--protocol gptq|llama.cpp] [--kv token:4] [--json]`:
// perplexity with the GPTQ-repo protocol (or llama-perplexity's, to compare with llama.cpp on the same GGUF),
// optionally with a quantized KV cache (its setting, memory and llama.cpp flags go in the report).

import path from 'node:path'
import { PERPLEXITY_PROTOCOLS, perplexity, type PerplexityProtocol } from '../engine/eval/perplexity'
import { evalBos, readTextFile, tokenizeForEval } from '../engine/eval/tokenize-text'
import { tokenizerSourceOf } from '../engine/formats/model-tokenizer'
import { loadModel } from '../engine/model/loaded-model'
import { WorkerPool } from '../engine/pool/worker-pool'
import { KERNEL_VARIANTS, type KernelVariant } from '../../kernels/host/load'
import { kvCacheReport, type KvCacheReport } from '../engine/analysis/kv-ranges'
import { kvCacheHooks, parseKvCacheSetting, type KvCacheSetting } from '../engine/forward/kv-cache-quant'
import { WhittleError } from '../engine/errors'
import { intFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { EVAL_HEADER } from './command-headers'
import { progressLine, warnIfBeyondContext } from './format'

export const EVAL: CommandSpec = {
  ...EVAL_HEADER,
  options: [
    { name: 'text', value: 'FILE', help: 'the UTF-8 text to evaluate (required)' },
    { name: 'seqlen', value: 'N', help: 'window length in tokens (default 256)' },
    { name: 'max-windows', value: 'N', help: 'evaluate only the first N windows (default: all)' },
    {
      name: 'protocol',
      value: 'P',
      help: "gptq (default: every prediction of every window) or llama.cpp (llama-perplexity's: BOS first, second half scored)",
    },
    {
      name: 'kv',
      value: 'SCHEME',
      help: 'quantize the KV cache: token:BITS, kivi:BITS[:RESIDUAL], q8_0, q4_0, q4_1, q5_0, q5_1 or iq4_nl',
    },
    { name: 'context', value: 'N', help: 'context length the --kv memory saving is reported for (default: seqlen)' },
    { name: 'threads', value: 'N', help: 'worker threads for the kernels (default: one per core)' },
    {
      name: 'kernels',
      value: 'K',
      help: 'exact (default: bit-exact, as compress measures) or fused (fused multiply-add where the runtime has it)',
    },
    { name: 'json', help: 'print one JSON document on stdout (progress stays on stderr)' },
  ],
}

export async function evalCommand(argv: string[]): Promise<number> {
  const args = parseCommand(argv, EVAL)
  if (args.positionals.length !== 1) throw new UsageError('eval needs exactly one MODEL path')
  if (typeof args.flags.text !== 'string') throw new UsageError('eval needs --text FILE')
  const seqlen = intFlag(args, 'seqlen', 256, 2, 1 << 16)
  const threads = intFlag(args, 'threads', 0, 0, 64) || undefined
  const maxWindows = intFlag(args, 'max-windows', 0, 0, 1 << 30) || undefined
  const context = intFlag(args, 'context', seqlen, 1, 1 << 24)
  const kernels = (args.flags.kernels ?? 'exact') as KernelVariant
  if (!KERNEL_VARIANTS.includes(kernels))
    throw new UsageError(`--kernels must be one of ${KERNEL_VARIANTS.join(', ')} (got ${String(args.flags.kernels)})`)
  const protocol = (args.flags.protocol ?? 'gptq') as PerplexityProtocol
  if (!PERPLEXITY_PROTOCOLS.includes(protocol))
    throw new UsageError(
      `--protocol must be one of ${PERPLEXITY_PROTOCOLS.join(', ')} (got ${String(args.flags.protocol)})`,
    )
  let kv: KvCacheSetting | null = null
  try {
    kv = typeof args.flags.kv === 'string' ? parseKvCacheSetting(args.flags.kv) : null
  } catch (e) {
    if (e instanceof WhittleError && e.code === 'validation') throw new UsageError(`--kv: ${e.message}`)
    throw e
  }
  const model = await loadModel(path.resolve(args.positionals[0]))
  const kvCache: KvCacheReport | null = kv ? kvCacheReport(model.arch, kv, context) : null
  const text = await readTextFile(path.resolve(args.flags.text))
  warnIfBeyondContext(model, seqlen)
  const progress = progressLine(process.stderr)
  progress.update(0, 'tokenizing')
  // With --max-windows only the first N windows' tokens are needed: the same ids as the whole text's, cut
  // (tokenize-text.ts encodes just enough of the text where that is provably the same). `tokens` then
  // counts those, not the whole text's.
  const ids = await tokenizeForEval(model.files, text, { maxTokens: maxWindows && maxWindows * seqlen })
  // Exact kernels by default, so eval repeats compress's ppl_after bit for bit; `--kernels fused` takes the
  // relaxed-SIMD build (fused multiply-add, within rounding noise: kernels/test/matmul-fused.test.ts, about
  // 1.2x faster on large models) where the runtime has it, the exact one otherwise.
  const pool = await WorkerPool.create({ threads, kernels })
  try {
    const r = await perplexity(pool, model, ids, {
      seqlen,
      protocol,
      bos: protocol === 'llama.cpp' ? await evalBos(model.files) : null,
      maxWindows,
      textFile: path.resolve(args.flags.text),
      hooks: kv ? kvCacheHooks(kv) : undefined,
      onProgress: progress.update,
    })
    progress.done(
      `${r.windows} windows × ${seqlen} tokens in ${r.seconds.toFixed(1)} s (${r.tokens_per_second.toFixed(0)} tok/s)`,
    )
    // Which tokenizer read the text: tokenizer.json beside the weights, or a GGUF's own tokenizer.ggml.*.
    const tokenizer = tokenizerSourceOf(model.files)
    if (args.flags.json)
      process.stdout.write(
        JSON.stringify(
          {
            model: model.files.path,
            text: path.resolve(args.flags.text),
            tokenizer,
            kernels: pool.kernelVariant,
            ...r,
            kv_cache: kvCache,
          },
          null,
          1,
        ) + '\n',
      )
    else {
      if (kvCache) process.stdout.write(kvCacheLine(kvCache) + '\n')
      process.stdout.write(
        `ppl ${r.ppl.toFixed(4)}   mean NLL ${r.mean_nll.toFixed(6)}   windows ${r.windows}   tokens ${r.tokens}   tokenizer ${tokenizer}   protocol ${r.protocol}\n`,
      )
    }
    return 0
  } finally {
    await pool.close()
  }
}

function kvCacheLine(kv: KvCacheReport): string {
  const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`
  const parts = [
    `kv cache ${kv.scheme}: K ${kv.key_bits.toFixed(2)} / V ${kv.value_bits.toFixed(2)} bits per value`,
    `${kv.bytes_per_token.toFixed(0)} B per token vs ${kv.baseline_bytes_per_token.toFixed(0)} B in f16`,
    `saves ${kib(kv.saved_bytes)} at ${kv.context_length} tokens`,
  ]
  if (kv.llama_cpp) parts.push(`llama.cpp: ${kv.llama_cpp}`)
  if (kv.note) parts.push(kv.note)
  return parts.join('   ')
}
