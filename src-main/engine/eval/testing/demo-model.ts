// The bundled demo model (the real stories260K in resources/demo/) and its bundled TinyStories texts, as
// the tests that need no ../shared load them.

import path from 'node:path'
import { loadModel, type LoadedModel } from '../../model/loaded-model'
import { repoRoot } from '../../testing/shared-data'
import { readTextFile, tokenizeForEval } from '../tokenize-text'

export const DEMO_MODEL_DIR = path.join(repoRoot, 'resources/demo/stories260K')

export function loadDemoModel(): Promise<LoadedModel> {
  return loadModel(DEMO_MODEL_DIR)
}

/** The bundled text's token ids, tokenized as perplexity does (one BOS first); `chars` keeps only its head. */
export async function demoTextIds(
  model: LoadedModel,
  name: 'tinystories_calib' | 'tinystories_eval',
  chars?: number,
): Promise<Int32Array> {
  const text = await readTextFile(path.join(repoRoot, `resources/text/${name}.txt`))
  return tokenizeForEval(model.files, chars === undefined ? text : text.slice(0, chars))
}
