// `whittle eval MODEL --text FILE [--seqlen 256] [--json]`: perplexity with the GPTQ-repo protocol.

import path from 'node:path'
import { perplexity } from '../engine/eval/perplexity'
import { readTextFile, tokenizeForEval } from '../engine/eval/tokenize-text'
import { tokenizerSourceOf } from '../engine/formats/model-tokenizer'
import { loadModel } from '../engine/model/loaded-model'
import { WorkerPool } from '../engine/pool/worker-pool'
import { intFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { progressLine, warnIfBeyondContext } from './format'

export const EVAL: CommandSpec = {
  name: 'eval',
  args: 'MODEL',
  summary: 'perplexity on a text: tokenized once with one BOS, non-overlapping windows (the GPTQ protocol)',
  options: [
    { name: 'text', value: 'FILE', help: 'the UTF-8 text to evaluate (required)' },
    { name: 'seqlen', value: 'N', help: 'window length in tokens (default 256)' },
    { name: 'max-windows', value: 'N', help: 'evaluate only the first N windows (default: all)' },
    { name: 'threads', value: 'N', help: 'worker threads for the kernels (default: one per core)' },
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
  const model = await loadModel(path.resolve(args.positionals[0]))
  const text = await readTextFile(path.resolve(args.flags.text))
  warnIfBeyondContext(model, seqlen)
  const progress = progressLine(process.stderr)
  progress.update(0, 'tokenizing')
  const ids = await tokenizeForEval(model.files, text)
  const pool = await WorkerPool.create({ threads })
  try {
    const r = await perplexity(pool, model, ids, {
      seqlen,
      maxWindows,
      textFile: path.resolve(args.flags.text),
      onProgress: progress.update,
    })
    progress.done(
      `${r.windows} windows × ${seqlen} tokens in ${r.seconds.toFixed(1)} s (${r.tokens_per_second.toFixed(0)} tok/s)`,
    )
    // Which tokenizer read the text: tokenizer.json beside the weights, or a GGUF's own tokenizer.ggml.*.
    const tokenizer = tokenizerSourceOf(model.files)
    if (args.flags.json)
      process.stdout.write(
        JSON.stringify({ model: model.files.path, text: path.resolve(args.flags.text), tokenizer, ...r }, null, 1) +
          '\n',
      )
    else
      process.stdout.write(
        `ppl ${r.ppl.toFixed(4)}   mean NLL ${r.mean_nll.toFixed(6)}   windows ${r.windows}   tokens ${r.tokens}   tokenizer ${tokenizer}\n`,
      )
    return 0
  } finally {
    await pool.close()
  }
}
