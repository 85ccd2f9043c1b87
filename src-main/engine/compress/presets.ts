// Recipe presets are plain recipe files in resources/recipes/; their first two comment lines give
// the preset's name and description. The same files run unchanged with `whittle compress --recipe`.

import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { RecipePreset } from '../../contract/api'
import { parseRecipeText } from './recipe/recipe'

export async function loadPresets(dir: string): Promise<RecipePreset[]> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.yaml')).sort()
  const presets: RecipePreset[] = []
  for (const f of files) {
    const file = path.join(dir, f)
    const text = await readFile(file, 'utf8')
    const comments = text
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .map((l) => l.replace(/^#\s?/, ''))
    presets.push({
      id: f.replace(/\.yaml$/, ''),
      name: comments[0] ?? f,
      description: comments[1] ?? '',
      recipe: parseRecipeText(text, file),
    })
  }
  return presets
}
