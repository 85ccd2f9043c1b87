// llama-perplexity beside Whittle's perplexity (issue #15): the same synthetic model written by Whittle as an
// F16 GGUF, run by llama.cpp's llama-perplexity with the same seqlen, window count and threads.
//
// Synthetic models have no tokenizer, and llama.cpp refuses a GGUF without one, so the GGUF is exported from
// a folder that links the model's files beside a generated SentencePiece-style tokenizer.json (byte
// fallback, the model's vocabulary size). Any text then tokenizes (mostly to byte tokens); the token ids
// differ from Whittle's run, which does not change the work per token.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { exportGguf } from '../src-main/engine/export/gguf/export-gguf'
import { loadModel } from '../src-main/engine/model/loaded-model'
import { WorkerPool } from '../src-main/engine/pool/worker-pool'
import { MODELS_DIR } from './models'

/** tokenizer.json with <unk>, <s>, </s>, the 256 byte tokens and filler pieces up to `vocabSize`. */
function byteFallbackTokenizer(vocabSize: number): string {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 }
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b
  for (let id = 259; id < vocabSize; id++) vocab[`▁piece${id}`] = id
  return JSON.stringify({
    model: { type: 'BPE', byte_fallback: true, unk_token: '<unk>', vocab, merges: [] },
    added_tokens: [
      { id: 0, content: '<unk>', special: true },
      { id: 1, content: '<s>', special: true },
      { id: 2, content: '</s>', special: true },
    ],
  })
}

/** Whittle's F16 GGUF of the synthetic model folder `source` (with a tokenizer), cached in bench/.models. */
export async function f16GgufWithTokenizer(source: string, vocabSize: number): Promise<string> {
  const file = path.join(MODELS_DIR, `${path.basename(source)}-tokenized-F16.gguf`)
  if (existsSync(file)) return file
  const staging = path.join(MODELS_DIR, `${path.basename(source)}-tokenized`)
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  for (const name of ['config.json', 'model.safetensors'])
    symlinkSync(path.join(source, name), path.join(staging, name))
  writeFileSync(path.join(staging, 'tokenizer.json'), byteFallbackTokenizer(vocabSize))
  writeFileSync(path.join(staging, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }))
  const pool = await WorkerPool.create({ threads: 2 })
  try {
    const partial = `${file}.partial`
    rmSync(partial, { force: true })
    await exportGguf(pool, await loadModel(staging), partial, { type: 'F16' })
    renameSync(partial, file)
  } finally {
    await pool.close()
    rmSync(staging, { recursive: true, force: true })
  }
  return file
}

export interface LlamaPerplexityRun {
  /** Prompt evaluation, tokens/s, as llama.cpp's own timer reports it (model loading excluded). */
  tokensPerSecond: number
  tokens: number
  /** The whole process, loading included. */
  wallSeconds: number
  /** User + system CPU of the whole process (from /usr/bin/time -v; NaN without it). */
  cpuSeconds: number
}

/** llama-perplexity -c seqlen --chunks windows -t threads -b seqlen on `text`; throws with its output tail on failure. */
export function llamaPerplexity(
  bin: string,
  gguf: string,
  text: string,
  seqlen: number,
  windows: number,
  threads: number,
): LlamaPerplexityRun {
  const exe = path.join(bin, 'llama-perplexity')
  const args = ['-m', gguf, '-f', text, '-c', String(seqlen), '--chunks', String(windows), '-t', String(threads)]
  const timed = existsSync('/usr/bin/time')
  const t0 = performance.now()
  const r = timed
    ? spawnSync('/usr/bin/time', ['-v', exe, ...args, '-b', String(seqlen)], { encoding: 'utf8', maxBuffer: 1 << 26 })
    : spawnSync(exe, [...args, '-b', String(seqlen)], { encoding: 'utf8', maxBuffer: 1 << 26 })
  const wallSeconds = (performance.now() - t0) / 1000
  const log = `${r.stdout}\n${r.stderr}`
  const field = (name: string): number => Number(new RegExp(`${name}: ([\\d.]+)`).exec(log)?.[1] ?? NaN)
  // llama_perf_context_print: prompt eval time = 31234.56 ms / 2048 tokens (... ms per token, 65.57 tokens per second)
  const m = /prompt eval time\s*=\s*[\d.]+ ms \/\s*(\d+) tokens.*?([\d.]+) tokens per second/.exec(log)
  if (r.status !== 0 || !m) throw new Error(`llama-perplexity failed (status ${r.status}): ${log.slice(-800)}`)
  const cpuSeconds = field('User time \\(seconds\\)') + field('System time \\(seconds\\)')
  return { tokens: Number(m[1]), tokensPerSecond: Number(m[2]), wallSeconds, cpuSeconds }
}
