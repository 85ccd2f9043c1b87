// `whittle compress MODEL --recipe FILE [--eval FILE] [--seqlen 256] --out DIR [--json]`
// Runs the recipe, measures perplexity before and after on --eval, and writes DIR atomically:
// the compressed model (dense safetensors of the compressed weights), whittle-recipe.yaml and
// whittle-result.json.

import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { bundledText } from '../app/paths'
import { compressModel, type CompressionReport } from '../engine/compress/compress-model'
import { readRecipe, recipeToYaml } from '../engine/compress/recipe/recipe'
import { readTextFile, tokenizeForEval } from '../engine/eval/tokenize-text'
import { assertFreeDestination, writeFolderAtomically } from '../engine/export/atomic-folder'
import { verifyDenseSafetensors, writeDenseSafetensors } from '../engine/export/dense-safetensors'
import { loadModel } from '../engine/model/loaded-model'
import { WorkerPool } from '../engine/pool/worker-pool'
import { intFlag, parseArgs, UsageError } from './args'
import { formatBytes, progressLine, table } from './format'

export async function compressCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { values: ['recipe', 'eval', 'seqlen', 'out', 'threads', 'max-windows'], booleans: ['json'] })
  if (args.positionals.length !== 1) throw new UsageError('compress needs exactly one MODEL path')
  if (typeof args.flags.recipe !== 'string') throw new UsageError('compress needs --recipe FILE')
  if (typeof args.flags.out !== 'string') throw new UsageError('compress needs --out DIR')
  const seqlen = intFlag(args, 'seqlen', 256, 2, 1 << 16)
  const threads = intFlag(args, 'threads', 0, 0, 64) || undefined
  const maxWindows = intFlag(args, 'max-windows', 0, 0, 1 << 30) || undefined
  const recipeFile = path.resolve(args.flags.recipe)
  const out = path.resolve(args.flags.out)
  const recipe = await readRecipe(recipeFile)
  const model = await loadModel(path.resolve(args.positionals[0]))
  await assertFreeDestination(out, [model.files.path, ...model.files.files])
  const progress = progressLine(process.stderr)
  let evalText: { path: string; ids: Int32Array } | undefined
  if (typeof args.flags.eval === 'string') {
    const p = path.resolve(args.flags.eval)
    progress.update(0, 'tokenizing the eval text')
    evalText = { path: p, ids: await tokenizeForEval(model.files, await readTextFile(p)) }
  }
  const pool = await WorkerPool.create({ threads })
  try {
    const { view, report } = await compressModel(pool, model, recipe, {
      recipeDir: path.dirname(recipeFile),
      defaultCalibrationText: bundledText('calib'),
      evalText, seqlen, maxEvalWindows: maxWindows,
      onProgress: progress.update,
    })
    progress.update(1, 'writing')
    await writeFolderAtomically(out, async (dir) => {
      await writeDenseSafetensors(view, dir)
      await writeFile(path.join(dir, 'whittle-recipe.yaml'), recipeToYaml(recipe))
      await writeFile(path.join(dir, 'whittle-result.json'), JSON.stringify(report, null, 1))
    }, (dir) => verifyDenseSafetensors(view, dir))
    progress.done(`compressed in ${report.seconds.toFixed(1)} s → ${out}`)
    if (args.flags.json) process.stdout.write(JSON.stringify({ out, ...report }, null, 1) + '\n')
    else process.stdout.write(humanReport(report, out))
    return 0
  } finally {
    await pool.close()
  }
}

function humanReport(r: CompressionReport, out: string): string {
  const ppl = r.ppl_before !== null && r.ppl_after !== null
    ? `perplexity   ${r.ppl_before.toFixed(4)} → ${r.ppl_after.toFixed(4)} (${(((r.ppl_after / r.ppl_before) - 1) * 100).toFixed(2)}%)\n`
    : ''
  return [
    `written      ${out}`,
    ppl.trimEnd(),
    `size         ${formatBytes(r.bytes_before)} → ${formatBytes(r.bytes_after)} (packed), ${r.bits_per_weight.toFixed(3)} bits per compressed weight`,
    '',
    table(['tensor', 'method', 'format', 'bits/w', 'weight err', 'output err'],
      r.tensors.map((t) => [t.name, t.method, t.format, t.bitsPerWeight.toFixed(3), t.relWeightError.toExponential(2), t.relOutputError === null ? '-' : t.relOutputError.toExponential(2)])),
  ].filter((l) => l !== '').join('\n') + '\n'
}
