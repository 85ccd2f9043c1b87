// The training text of a recovery step (distill, lora): a text file, or every .txt file of a folder in
// name order (each tokenized on its own, with its own BOS, then joined). Errors name the file or folder:
// not found, not a file, not UTF-8, too large (eval/tokenize-text.ts), or a folder without a .txt file.

import { readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { WhittleError } from '../../errors'
import { readTextFile, tokenizeForEval } from '../../eval/tokenize-text'
import type { LoadedModel } from '../../model/loaded-model'
import { choiceParam, intParam, type ParamSpec } from '../../../contract/method-params'

/** How a recovery step (distill, lora, cofi) walks its training text: one spec each, shared. */
export const TRAINING_WINDOW_PARAMS: readonly ParamSpec[] = [
  intParam('steps', 200, 1, 10_000_000, 'Optimizer steps'),
  intParam('batch_size', 8, 1, 4096, 'Windows per optimizer step'),
  intParam(
    'micro_batch',
    null,
    1,
    4096,
    'Windows per forward/backward pass (at most batch_size; gradients accumulate)',
    '= batch_size',
  ),
  intParam('seqlen', 256, 2, 1 << 16, 'Tokens per training window'),
  choiceParam('order', 'shuffled', ['sequential', 'shuffled'], 'Order in which the training windows are visited'),
]

/** Cap on the training text read from a folder, in files. */
const MAX_TEXT_FILES = 10_000

/** Token ids of a text file, or of every .txt file in a folder (each with its own BOS), in name order. */
export async function trainingIds(model: LoadedModel, where: string): Promise<Int32Array> {
  let files: string[]
  try {
    const st = await stat(where)
    files = st.isDirectory()
      ? (await readdir(where))
          .filter((f) => f.endsWith('.txt'))
          .sort()
          .map((f) => path.join(where, f))
      : [where]
  } catch {
    throw new WhittleError('not-found', where, 'cannot read the training text')
  }
  if (files.length === 0) throw new WhittleError('validation', where, 'the folder holds no .txt file to train on')
  if (files.length > MAX_TEXT_FILES)
    throw new WhittleError(
      'validation',
      where,
      `the folder holds ${files.length} .txt files; the limit is ${MAX_TEXT_FILES} (join them into fewer files)`,
    )
  const parts: Int32Array[] = []
  for (const f of files) parts.push(await tokenizeForEval(model.files, await readTextFile(f)))
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
