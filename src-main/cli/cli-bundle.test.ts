// The CLI's two ways to start (bin.mjs): the prebuilt bundle out/cli (build-cli.mjs) while it is fresh, the
// TypeScript sources through tsx otherwise. Checked: the freshness rule on a scratch checkout, bin.mjs's
// choice on a scratch checkout with a fake bundle and fake sources, and the real bundle (when built and
// fresh; `npm test` builds it first) giving the same answers as the sources, with each command in a chunk
// of its own that `whittle --help` does not load.

import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { scaled } from '../engine/testing/time-factor'
import { CLI_ROOT, cliBundleDir, cliBundleProblem } from './bundle-freshness.mjs'

const root = path.resolve(__dirname, '../..')
const demo = path.join(root, 'resources/demo/stories260K')
// Scratch checkouts live under out/ (ignored), so that bin.mjs's fallback still finds tsx in node_modules.
const scratchParent = path.join(root, 'out')
mkdirSync(scratchParent, { recursive: true })
const scratches: string[] = []
afterAll(() => scratches.forEach((d) => rmSync(d, { recursive: true, force: true })))

/** A scratch checkout: bin.mjs and bundle-freshness.mjs, one source file, and a bundle built "now". */
function scratchCheckout(): { dir: string; source: string } {
  const dir = mkdtempSync(path.join(scratchParent, 'cli-bundle-test-'))
  scratches.push(dir)
  const cli = path.join(dir, 'src-main', 'cli')
  mkdirSync(cli, { recursive: true })
  for (const f of ['bin.mjs', 'bundle-freshness.mjs'])
    copyFileSync(path.join(root, 'src-main/cli', f), path.join(cli, f))
  const source = path.join(cli, 'main.ts')
  const say = (what: string): string =>
    `export async function main(argv: string[]): Promise<number> {\n  process.stdout.write('${what} ' + argv.join(' '))\n  return 0\n}\n`
  writeFileSync(source, say('source'))
  const out = cliBundleDir(dir)
  mkdirSync(out, { recursive: true })
  writeFileSync(path.join(out, 'main.mjs'), say('bundle').replace(/: string\[\]|: Promise<number>/g, ''))
  const builtAt = statSync(source).mtimeMs + 1000
  writeFileSync(path.join(out, 'inputs.json'), JSON.stringify({ builtAt, inputs: ['src-main/cli/main.ts'] }))
  return { dir, source }
}

function makeNewer(file: string): void {
  const later = new Date(Date.now() + 60_000)
  utimesSync(file, later, later)
}

function run(
  bin: string,
  args: string[],
  mode?: 'source' | 'bundle',
): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.WHITTLE_CLI
  if (mode) env.WHITTLE_CLI = mode
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: scaled(240_000), env })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('cliBundleProblem', () => {
  it('is null for a fresh bundle and names what makes one unusable', () => {
    const { dir, source } = scratchCheckout()
    expect(cliBundleProblem(dir)).toBeNull()
    makeNewer(source)
    expect(cliBundleProblem(dir)).toContain('src-main/cli/main.ts')
    rmSync(source)
    expect(cliBundleProblem(dir)).toContain('src-main/cli/main.ts')
    rmSync(path.join(cliBundleDir(dir), 'inputs.json'))
    expect(cliBundleProblem(dir)).not.toBeNull()
  })

  it('belongs to this checkout', () => {
    expect(CLI_ROOT).toBe(root)
  })
})

describe('bin.mjs', () => {
  it('runs a fresh bundle, the sources when asked or when a source changed, and refuses a stale forced bundle', () => {
    const { dir, source } = scratchCheckout()
    const bin = path.join(dir, 'src-main/cli/bin.mjs')
    expect(run(bin, ['a', 'b']).stdout).toBe('bundle a b')
    expect(run(bin, ['a'], 'source').stdout).toBe('source a')
    makeNewer(source)
    expect(run(bin, ['a']).stdout).toBe('source a')
    const forced = run(bin, ['a'], 'bundle')
    expect(forced.status).toBe(1)
    expect(forced.stdout).toBe('')
    expect(forced.stderr).toContain('src-main/cli/main.ts')
  })
})

const bundleProblem = cliBundleProblem()
const bin = path.join(root, 'src-main/cli/bin.mjs')

describe.skipIf(bundleProblem !== null)(`the built CLI bundle (skipped: ${bundleProblem ?? ''})`, () => {
  it('prints the same usage as the sources', () => {
    const bundled = run(bin, ['--help'], 'bundle')
    expect(bundled.status, bundled.stderr).toBe(0)
    expect(bundled.stdout).toBe(run(bin, ['--help'], 'source').stdout)
    expect(bundled.stdout).toMatch(/^ {2}compress MODEL/m)
  })

  it('evaluates the demo model exactly as the sources do, workers and kernels found from out/cli', () => {
    const args = ['eval', demo, '--text', path.join(root, 'resources/text/tinystories_eval.txt')]
    const bundled = run(bin, [...args, '--max-windows', '2', '--threads', '2', '--json'], 'bundle')
    expect(bundled.status, bundled.stderr).toBe(0)
    const source = run(bin, [...args, '--max-windows', '2', '--threads', '2', '--json'], 'source')
    expect(source.status, source.stderr).toBe(0)
    const [b, s] = [JSON.parse(bundled.stdout), JSON.parse(source.stdout)]
    expect(b.windows).toBe(2)
    expect(b.mean_nll).toBe(s.mean_nll)
    expect(b.tokens).toBe(s.tokens)
  })

  it('keeps every command in a chunk of its own that main.mjs imports only when the command runs', () => {
    const dir = cliBundleDir()
    const files = readdirSync(path.join(dir, 'chunks')).map((f) => path.join(dir, 'chunks', f))
    // main.mjs's static import closure: what `whittle --help` loads.
    const loaded = new Set<string>()
    const visit = (file: string): void => {
      if (loaded.has(file)) return
      loaded.add(file)
      const text = readFileSync(file, 'utf8')
      for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"|^import\s+"(\.[^"]+)"/gms))
        visit(path.resolve(path.dirname(file), m[1] ?? m[2]))
    }
    visit(path.join(dir, 'main.mjs'))
    const commands = files.filter((f) => /-command-[^/]*\.mjs$/.test(f))
    expect(commands.map((f) => path.basename(f).replace(/-[^-]*$/, '')).sort()).toEqual([
      'compress-command',
      'convert-command',
      'eval-command',
      'imatrix-command',
      'inspect-command',
      'serve-command',
    ])
    for (const c of commands) expect(loaded.has(c), path.basename(c)).toBe(false)
    const bytes = (fs: Iterable<string>): number => [...fs].reduce((n, f) => n + statSync(f).size, 0)
    expect(bytes(loaded)).toBeLessThan(0.05 * bytes([path.join(dir, 'main.mjs'), ...files]))
  })
})
