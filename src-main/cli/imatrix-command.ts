// `whittle imatrix MODEL --text FILE --out FILE [--ctx 512] [--chunks N] [--format gguf|dat] [--llama-cpp-attention] [--json]`
// An importance matrix as llama-imatrix computes it (-f FILE -o FILE -c N --chunks N --output-format),
// in either of its file formats, for `convert --imatrix` / `compress --imatrix` or llama-quantize itself.

import path from 'node:path'
import { computeImatrix, chunkBos, DEFAULT_IMATRIX_CTX } from '../engine/calibration/imatrix'
import { readTextFile, tokenizeForEval } from '../engine/eval/tokenize-text'
import { ggufLlamaName } from '../engine/export/gguf/names'
import { importanceFor } from '../engine/formats/imatrix-data'
import { IMATRIX_FORMATS, writeImatrixFile, type ImatrixFormat } from '../engine/formats/imatrix-file'
import { tokenizerSourceOf } from '../engine/formats/model-tokenizer'
import { loadModel } from '../engine/model/loaded-model'
import { WorkerPool } from '../engine/pool/worker-pool'
import { intFlag, UsageError } from './args'
import { parseCommand, type CommandSpec } from './command-spec'
import { IMATRIX_HEADER } from './command-headers'
import { formatBytes, progressLine, table, warnIfBeyondContext } from './format'

export const IMATRIX: CommandSpec = {
  ...IMATRIX_HEADER,
  options: [
    { name: 'text', value: 'FILE', help: 'calibration text, UTF-8 (llama-imatrix -f) (required)' },
    { name: 'out', value: 'FILE', help: 'the imatrix file to write; must not exist (llama-imatrix -o) (required)' },
    {
      name: 'ctx',
      value: 'N',
      help: `tokens per chunk, each starting with BOS (llama-imatrix -c; default ${DEFAULT_IMATRIX_CTX})`,
    },
    { name: 'chunks', value: 'N', help: 'use at most N chunks (default: every whole chunk of the text)' },
    {
      name: 'format',
      value: 'FORMAT',
      help: `${IMATRIX_FORMATS.join(' | ')}: llama.cpp's GGUF imatrix (default) or the legacy .dat`,
    },
    {
      name: 'llama-cpp-attention',
      help: "replay llama.cpp's attention (f16 KV cache, flash attention) for values within 1e-4 of llama-imatrix's; slow, Llama models",
    },
    { name: 'threads', value: 'N', help: 'worker threads for the kernels (default: one per core)' },
    { name: 'json', help: 'print one JSON document on stdout (progress stays on stderr)' },
  ],
  notes: [
    'Entries are named as in a GGUF (blk.N.attn_q.weight, ...); token_embd and output get none, as with llama-imatrix.',
    'Use the file with: whittle convert MODEL --format gguf --gguf-type Q4_K_M --imatrix FILE --out OUT.gguf',
  ],
}

export async function imatrixCommand(argv: string[]): Promise<number> {
  const args = parseCommand(argv, IMATRIX)
  if (args.positionals.length !== 1) throw new UsageError('imatrix needs exactly one MODEL path')
  if (typeof args.flags.text !== 'string') throw new UsageError('imatrix needs --text FILE')
  if (typeof args.flags.out !== 'string') throw new UsageError('imatrix needs --out FILE')
  const format = args.flags.format ?? 'gguf'
  if (typeof format !== 'string' || !IMATRIX_FORMATS.includes(format as ImatrixFormat))
    throw new UsageError(`--format must be one of ${IMATRIX_FORMATS.join(', ')}`)
  const ctx = intFlag(args, 'ctx', DEFAULT_IMATRIX_CTX, 2, 1 << 16)
  const chunks = intFlag(args, 'chunks', 0, 0, 1 << 30) || undefined
  const threads = intFlag(args, 'threads', 0, 0, 64) || undefined
  const textFile = path.resolve(args.flags.text)
  const out = path.resolve(args.flags.out)
  const model = await loadModel(path.resolve(args.positionals[0]))
  warnIfBeyondContext(model, ctx)
  const progress = progressLine(process.stderr)
  progress.update(0, 'tokenizing')
  const ids = await tokenizeForEval(model.files, await readTextFile(textFile))
  const bos = await chunkBos(model.files, ids)
  const pool = await WorkerPool.create({ threads })
  try {
    const started = performance.now()
    const r = await computeImatrix(pool, model, ids, {
      ctx,
      chunks,
      bos,
      entryName: ggufLlamaName,
      dataset: path.basename(textFile),
      onProgress: progress.update,
      llamaCppAttention: args.flags['llama-cpp-attention'] === true,
    })
    const seconds = (performance.now() - started) / 1000
    const bytes = await writeImatrixFile(out, r.imatrix, format as ImatrixFormat)
    progress.done(
      `${r.imatrix.chunkCount} chunks × ${ctx} tokens in ${seconds.toFixed(1)} s → ${out} (${formatBytes(bytes)})`,
    )
    // Per entry, how uneven its channels are: the largest importance over the mean (outlier channels).
    const entries = [...r.imatrix.entries].map(([name, e]) => {
      const imp = importanceFor({ imatrix: r.imatrix, file: null }, name, e.columns, e.counts.length)!
      const mean = imp.reduce((s, v) => s + v, 0) / imp.length
      return {
        name,
        columns: e.columns,
        tokens: e.counts[0],
        mean,
        maxOverMean: mean > 0 ? Math.max(...imp) / mean : 0,
      }
    })
    const summary = {
      model: model.files.path,
      text: textFile,
      tokenizer: tokenizerSourceOf(model.files),
      out,
      format,
      bytes,
      ctx,
      chunks: r.imatrix.chunkCount,
      textTokens: r.textTokens,
      usedTokens: r.usedTokens,
      perplexity: r.perplexity,
      seconds,
      entries,
    }
    if (args.flags.json) process.stdout.write(JSON.stringify(summary, null, 1) + '\n')
    else {
      process.stdout.write(
        table(
          ['entry', 'columns', 'tokens', 'mean x²', 'max / mean'],
          entries.map((e) => [
            e.name,
            String(e.columns),
            String(e.tokens),
            e.mean.toExponential(3),
            e.maxOverMean.toFixed(1),
          ]),
        ),
      )
      process.stdout.write(
        `${r.imatrix.entries.size} entries from ${r.usedTokens} of the text's ${r.textTokens} tokens; perplexity over the chunks' second halves ${r.perplexity.toFixed(4)}\n`,
      )
    }
    return 0
  } finally {
    await pool.close()
  }
}
