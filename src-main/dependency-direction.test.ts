// Dependency direction, enforced. Every import in kernels/, src-main/ and src-renderer/ is read (with the
// TypeScript parser, see engine/testing/import-graph.ts) and checked against LAYERS below: a layer may
// import itself and the layers below it, never one above. The order is the (kernels <- numerics <-
// io/formats <- arch <- pool <- forward <- calibration/analysis <- compress <- export <- app <-
// cli/server/main); where the other folders sit, and why:
//
// - contract/ just above kernels: the typed vocabulary the renderer shares; every engine layer may use its
//   types, and it imports nothing outside itself (the renderer sees everything contract imports).
// - errors.ts and jobs/ (cancellation, the job registry) with numerics: every layer throws or checks them.
// - synthetic/ just above io/formats: it writes checkpoints with the writers, and the tests of every layer
//   above generate models with it.
// - model/ with arch/: the loaded model and its views are what arch describes; pool and up take them.
// - eval/ and inspect/ beside calibration/ and analysis/: they run the forward pass or the pool to measure.
// - train/ on its own just below compress/: the recovery methods' engine, free to use calibration.
// - preload/ and main/ with cli/ and server/: the front ends.
//
// The renderer (src-renderer/) reaches src-main only through src-main/contract/.
//
// Tests and test support. A test (*.test.ts) sits in the layer of its folder and follows the same rule:
// a test that needs a higher layer tests that layer, and lives there. The few that read their fixtures or
// golden files through a higher layer are named in TESTS_REACHING_UP with the reason; an entry that is no
// longer needed fails the test, so the list only shrinks. Test support lives in a `testing/`
// folder beside the code of its layer (engine/compress/testing/, kernels/testing/,
// src-renderer/src/testing/, ...), one file per thing it provides; only tests and other test support
// import it, and only they import vitest. engine/testing/ is the layer-free support (where ../shared is,
// time limits, this test's import graph): it imports nothing from the project, and every test, the
// kernels' included, may use it. Nothing imports a test file.
//
// A folder that is in no layer fails the test until it is given one here (and in README's ARCHITECTURE
// section, which a test below keeps in step with this table).
//
// A second test checks that src-main and kernels have no import cycles (type-only imports included:
// a cycle of types is still two modules that cannot be read one before the other).

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  importCycles,
  readImportGraph,
  shortestLoops,
  type ImportEdge,
  type PackageImport,
} from './engine/testing/import-graph'
import { repoRoot } from './engine/testing/shared-data'

interface Layer {
  name: string
  /** Repository-relative folders (ending in '/') and files that belong to the layer. */
  paths: string[]
}

/** The layer order, bottom first. README's ARCHITECTURE section lists the same names in the same order. */
const LAYERS: readonly Layer[] = [
  { name: 'kernels', paths: ['kernels/'] },
  { name: 'contract', paths: ['src-main/contract/'] },
  {
    name: 'numerics',
    paths: [
      'src-main/engine/numerics/',
      'src-main/engine/errors.ts',
      'src-main/engine/errors.test.ts',
      'src-main/engine/jobs/',
    ],
  },
  { name: 'io/formats', paths: ['src-main/engine/io/', 'src-main/engine/formats/'] },
  { name: 'synthetic', paths: ['src-main/engine/synthetic/'] },
  { name: 'arch/model', paths: ['src-main/engine/arch/', 'src-main/engine/model/'] },
  { name: 'pool', paths: ['src-main/engine/pool/'] },
  { name: 'forward', paths: ['src-main/engine/forward/'] },
  {
    name: 'calibration/analysis',
    paths: [
      'src-main/engine/calibration/',
      'src-main/engine/analysis/',
      'src-main/engine/eval/',
      'src-main/engine/inspect/',
    ],
  },
  { name: 'train', paths: ['src-main/engine/train/'] },
  { name: 'compress', paths: ['src-main/engine/compress/'] },
  { name: 'export', paths: ['src-main/engine/export/'] },
  { name: 'app', paths: ['src-main/app/'] },
  { name: 'cli/server/main', paths: ['src-main/cli/', 'src-main/server/', 'src-main/main/', 'src-main/preload/'] },
]

/**
 * Tests (and test support) allowed to import up to a higher layer than their own, each with the reason.
 * The rest of the rule still holds for them: nothing above `reaches`.
 */
const TESTS_REACHING_UP: readonly { file: string; reaches: string; why: string }[] = [
  ...['ggml-quantize', 'ggml-more-types', 'ggml-imatrix-quantize'].map((name) => ({
    file: `kernels/test/${name}.test.ts`,
    reaches: 'io/formats',
    why: "reads llama.cpp's golden GGUF files with the engine's reader",
  })),
  {
    file: 'src-main/engine/formats/shared-files.test.ts',
    reaches: 'arch/model',
    why: "compares the GGUF's q/k rows with HF's through arch's RoPE permutation",
  },
  {
    file: 'src-main/engine/formats/gguf-tokenizer.test.ts',
    reaches: 'calibration/analysis',
    why: 'tokenizes through tokenizeForEval, the path eval takes',
  },
  {
    file: 'src-main/engine/formats/hostile-inputs.test.ts',
    reaches: 'calibration/analysis',
    why: 'a tokenizer that throws on encode must fail through tokenizeForEval',
  },
  {
    file: 'src-main/engine/formats/fuzz-regressions.test.ts',
    reaches: 'export',
    why: 'replays fuzz cases: the seeds are checkpoints written by the exporters, opened as the app opens them',
  },
  {
    file: 'src-main/engine/jobs/cancel.test.ts',
    reaches: 'pool',
    why: 'a kernel call on the worker pool is what cancellation must stop',
  },
  {
    file: 'src-main/engine/synthetic/generate.test.ts',
    reaches: 'arch/model',
    why: 'the generated checkpoint must be recognised by the adapters',
  },
  ...[
    'src-main/engine/forward/testing/naive-reference.ts',
    'src-main/engine/forward/neox-forward.test.ts',
    'src-main/engine/forward/opt-forward.test.ts',
  ].map((file) => ({
    file,
    reaches: 'calibration/analysis',
    why: "the calibration capture is checked against the naive forward's recorded inputs",
  })),
  {
    file: 'src-main/engine/train/llama-trainer.test.ts',
    reaches: 'compress',
    why: "drives the trainer through distill's parameters, its one client",
  },
  {
    file: 'src-main/engine/compress/structure/structure.test.ts',
    reaches: 'export',
    why: "the smaller model's export must re-open with a consistent config.json",
  },
  {
    file: 'src-main/engine/export/gguf/export-more-types.test.ts',
    reaches: 'cli/server/main',
    why: 'one case exports through `whittle convert`',
  },
]

/** Layer-free test support: importable by every test, importing nothing from the project. */
const LAYER_FREE_SUPPORT = 'src-main/engine/testing/'
const RENDERER = 'src-renderer/'
const CONTRACT = 'src-main/contract/'
/** Repository-wide checks such as this file: tests that belong to no layer. */
const REPOSITORY_TESTS = /^src-main\/[^/]+\.test\.ts$/

type Kind = 'production' | 'test' | 'test support'

interface Place {
  /** The layer's name, 'renderer', 'layer-free test support', 'repository test' or null (unassigned). */
  layer: string | null
  /** Position in LAYERS; the renderer and repository tests are outside the order (-1). */
  rank: number
  kind: Kind
}

function kindOf(file: string): Kind {
  if (/\.test\.ts$/.test(file)) return 'test'
  if (/(^|\/)testing\//.test(file)) return 'test support'
  return 'production'
}

function placeOf(file: string): Place {
  const kind = kindOf(file)
  if (file.startsWith(LAYER_FREE_SUPPORT)) return { layer: 'layer-free', rank: -1, kind: 'test support' }
  if (file.startsWith(RENDERER)) return { layer: 'renderer', rank: -1, kind }
  if (REPOSITORY_TESTS.test(file)) return { layer: 'repository test', rank: -1, kind }
  const rank = LAYERS.findIndex((l) => l.paths.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p)))
  return { layer: rank < 0 ? null : LAYERS[rank].name, rank, kind }
}

function describeLayer(place: Place): string {
  const base = place.layer ?? 'no layer'
  return place.kind === 'production' ? base : `${base} ${place.kind}`
}

/** One line per broken rule: `file -> import (layer A imports layer B)`. */
function violationsOf(
  edges: readonly ImportEdge[],
  packages: readonly PackageImport[],
  usedReaches?: Set<string>,
): string[] {
  const out: string[] = []
  for (const { from, to } of edges) {
    const a = placeOf(from)
    const b = placeOf(to)
    const line = (why: string): void => {
      out.push(`${from} -> ${to} (${why})`)
    }
    const imports = `${describeLayer(a)} imports ${describeLayer(b)}`
    if (b.kind === 'test') line(`${imports}: nothing imports a test file`)
    else if (b.kind === 'test support' && a.kind === 'production') line(`${imports}: only tests use test support`)
    else if (a.layer === 'layer-free') {
      if (!to.startsWith(LAYER_FREE_SUPPORT)) line(`${imports}: layer-free support imports nothing from the project`)
    } else if (a.layer === 'renderer') {
      if (!to.startsWith(RENDERER) && !to.startsWith(CONTRACT))
        line(`${imports}: the renderer reaches src-main only through contract`)
    } else if (a.layer === 'repository test') {
      if (b.layer !== 'layer-free') line(`${imports}: repository tests use only layer-free support`)
    } else if (a.layer === null) {
      line(`${from} is in no layer: add its folder to LAYERS in src-main/dependency-direction.test.ts`)
    } else if (b.layer === 'layer-free') {
      // Every test and test support may use it; production code was refused above.
    } else if (b.layer === 'renderer') {
      line(`${imports}: src-main never imports the renderer`)
    } else if (b.layer === null) {
      line(`${imports}: ${to} is in no layer`)
    } else if (a.layer === 'contract' && b.layer !== 'contract') {
      line(`${imports}: contract imports nothing outside itself`)
    } else if (b.rank > a.rank) {
      const reach = a.kind === 'production' ? undefined : TESTS_REACHING_UP.find((t) => t.file === from)
      const reachRank = reach ? LAYERS.findIndex((l) => l.name === reach.reaches) : -1
      if (reach && b.rank <= reachRank) usedReaches?.add(reach.file)
      else line(imports)
    }
  }
  for (const { from, specifier } of packages) {
    if (
      (specifier === 'vitest' || specifier.startsWith('vitest/')) &&
      kindOf(from) === 'production' &&
      !from.startsWith(LAYER_FREE_SUPPORT)
    ) {
      out.push(
        `${from} -> ${specifier} (${describeLayer(placeOf(from))} imports vitest: only tests and test support do)`,
      )
    }
  }
  return out
}

const SCANNED = ['kernels', 'src-main', 'src-renderer']

describe('dependency direction', () => {
  const graph = readImportGraph(repoRoot, SCANNED)

  it('reads the imports it checks (the scan is not empty and sees the layers)', () => {
    expect(graph.files.length).toBeGreaterThan(300)
    // These edges exist today and are allowed; if the parser stopped seeing them the test would pass vacuously.
    const seen = (from: string, to: string): boolean =>
      graph.edges.some((e) => e.from.startsWith(from) && e.to.startsWith(to))
    expect(seen('src-main/engine/compress/', 'src-main/engine/formats/')).toBe(true)
    expect(seen('src-renderer/', 'src-main/contract/')).toBe(true)
    expect(graph.packages.some((p) => p.specifier === 'vitest')).toBe(true)
  })

  it('flags what goes up, reaches past contract, or leaks test support (the rules on made-up edges)', () => {
    const edge = (from: string, to: string): ImportEdge => ({ from, to, specifier: to, typeOnly: false })
    const flagged = violationsOf(
      [
        edge('src-main/engine/formats/read.ts', 'src-main/engine/compress/pipeline.ts'),
        edge('kernels/reference/stats.ts', 'src-main/engine/errors.ts'),
        edge('src-renderer/src/lib/format.ts', 'src-main/engine/errors.ts'),
        edge('src-main/engine/compress/predict.ts', 'src-main/engine/compress/testing/synthetic-layer.ts'),
        edge('src-main/contract/api.ts', 'src-main/engine/errors.ts'),
        edge('src-main/engine/newfolder/x.ts', 'src-main/engine/errors.ts'),
        edge('src-main/engine/testing/shared-data.ts', 'src-main/engine/errors.ts'),
      ],
      [{ from: 'src-main/engine/compress/predict.ts', specifier: 'vitest' }],
    )
    expect(flagged).toEqual([
      'src-main/engine/formats/read.ts -> src-main/engine/compress/pipeline.ts (io/formats imports compress)',
      'kernels/reference/stats.ts -> src-main/engine/errors.ts (kernels imports numerics)',
      'src-renderer/src/lib/format.ts -> src-main/engine/errors.ts (renderer imports numerics: the renderer reaches src-main only through contract)',
      'src-main/engine/compress/predict.ts -> src-main/engine/compress/testing/synthetic-layer.ts (compress imports compress test support: only tests use test support)',
      'src-main/contract/api.ts -> src-main/engine/errors.ts (contract imports numerics: contract imports nothing outside itself)',
      'src-main/engine/newfolder/x.ts -> src-main/engine/errors.ts (src-main/engine/newfolder/x.ts is in no layer: add its folder to LAYERS in src-main/dependency-direction.test.ts)',
      'src-main/engine/testing/shared-data.ts -> src-main/engine/errors.ts (layer-free test support imports numerics: layer-free support imports nothing from the project)',
      'src-main/engine/compress/predict.ts -> vitest (compress imports vitest: only tests and test support do)',
    ])
    const allowed = violationsOf(
      [
        edge('src-main/engine/compress/pipeline.ts', 'src-main/engine/formats/read.ts'),
        edge('src-main/engine/compress/methods/gptq.test.ts', 'src-main/engine/compress/testing/synthetic-layer.ts'),
        edge('kernels/test/stats.test.ts', 'src-main/engine/testing/shared-data.ts'),
        edge('src-renderer/src/stores/compress.ts', 'src-main/contract/api.ts'),
      ],
      [{ from: 'src-main/engine/formats/testing/x.ts', specifier: 'vitest' }],
    )
    expect(allowed).toEqual([])
  })

  it('no import goes up the layer order', () => {
    const used = new Set<string>()
    const violations = violationsOf(graph.edges, graph.packages, used)
    const stale = TESTS_REACHING_UP.filter((t) => !used.has(t.file)).map(
      (t) => `${t.file} no longer imports above its layer: remove it from TESTS_REACHING_UP`,
    )
    const all = [...violations, ...stale]
    expect(all, `${all.length} imports break the layer order:\n${all.join('\n')}`).toEqual([])
  })

  it('the import graph of src-main and kernels has no cycles', () => {
    const inScope = (f: string): boolean => f.startsWith('src-main/') || f.startsWith('kernels/')
    const files = graph.files.filter(inScope)
    const edges = graph.edges.filter((e) => inScope(e.from))
    const cycles = importCycles(files, edges)
    const report = cycles.map((c) => {
      const loops = shortestLoops(c, edges).map((loop) => `    ${loop.join(' -> ')}`)
      return `${c.length} files in one cycle; its shortest loops:\n${loops.join('\n')}`
    })
    expect(cycles, `${cycles.length} import cycles:\n${report.join('\n')}`).toEqual([])
  })

  it("README's ARCHITECTURE section lists the same layers in the same order", () => {
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8')
    const section = readme.split(/^## /m).find((s) => s.startsWith('Architecture'))
    expect(section, 'README.md has no "## Architecture" section').toBeDefined()
    const block = /```text\n([\s\S]*?)```/.exec(section!)?.[1] ?? ''
    const listed = [...block.matchAll(/^\s*\d+\.\s+(\S+)/gm)].map((m) => m[1])
    expect(listed).toEqual(LAYERS.map((l) => l.name))
  })
})
