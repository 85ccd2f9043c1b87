// The repository's import graph, read from the sources with the TypeScript compiler's parser (no
// type checking, no module resolution beyond what this project uses: relative specifiers, the
// `@contract/` alias, and `new URL('./x', import.meta.url)` for worker scripts). Used by
// src-main/dependency-direction.test.ts. Layer-free test support: it imports nothing from the project.

import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

/** One import of one file: the specifier as written, and the repository path it resolves to. */
export interface ImportEdge {
  /** Repository-relative path of the importing file, with forward slashes. */
  from: string
  /** The specifier as written in the source. */
  specifier: string
  /** Repository-relative path of the imported file (resolved where it exists; else the lexical path). */
  to: string
  /** `import type` / `export type`: erased at run time. */
  typeOnly: boolean
}

/** A bare package import (e.g. `vitest`), kept apart from the project's own files. */
export interface PackageImport {
  from: string
  specifier: string
}

export interface ImportGraph {
  files: string[]
  edges: ImportEdge[]
  packages: PackageImport[]
}

const SOURCE_EXTENSIONS = ['.ts', '.mts', '.mjs', '.js', '.vue']
const SKIPPED_FOLDERS = new Set(['node_modules', 'build', 'out', 'dist'])
const ALIASES: Record<string, string> = { '@contract/': 'src-main/contract/' }

function toPosix(p: string): string {
  return p.split(path.sep).join('/')
}

/** Every source file under `folders` (repository-relative), skipping build outputs and `.d.ts`. */
export function listSources(root: string, folders: readonly string[]): string[] {
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name
      if (entry.isDirectory()) {
        if (!SKIPPED_FOLDERS.has(entry.name)) walk(child)
      } else if (SOURCE_EXTENSIONS.some((ext) => entry.name.endsWith(ext)) && !entry.name.endsWith('.d.ts')) {
        out.push(child)
      }
    }
  }
  for (const folder of folders) walk(folder)
  return out.sort()
}

/** The script blocks of a Vue single-file component, joined (the template imports nothing). */
function scriptOf(file: string, text: string): string {
  if (!file.endsWith('.vue')) return text
  const blocks = [...text.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1])
  return blocks.join('\n')
}

interface RawImport {
  specifier: string
  typeOnly: boolean
}

/** Static imports and re-exports, dynamic `import()`, `import('x')` types and worker URLs of one file. */
function importsOf(file: string, text: string): RawImport[] {
  const source = ts.createSourceFile(file, scriptOf(file, text), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const found: RawImport[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause
      const typeOnly = !!clause && (clause.isTypeOnly || allNamedTypeOnly(clause))
      found.push({ specifier: node.moduleSpecifier.text, typeOnly })
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly })
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      found.push({ specifier: node.argument.literal.text, typeOnly: true })
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments
      if (arg && ts.isStringLiteralLike(arg)) found.push({ specifier: arg.text, typeOnly: false })
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      const [arg, base] = node.arguments ?? []
      if (
        arg &&
        ts.isStringLiteralLike(arg) &&
        arg.text.startsWith('.') &&
        base &&
        base.getText(source) === 'import.meta.url'
      ) {
        found.push({ specifier: arg.text, typeOnly: false })
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** `import { type A, type B } from 'x'`: every named binding is a type, so the import is erased. */
function allNamedTypeOnly(clause: ts.ImportClause): boolean {
  if (clause.name) return false
  const named = clause.namedBindings
  return !!named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly)
}

function isFile(absolute: string): boolean {
  try {
    return statSync(absolute).isFile()
  } catch {
    return false
  }
}

/** The repository path a project specifier names, or null for a package import. */
function resolveSpecifier(root: string, from: string, specifier: string): string | null {
  let lexical: string
  const alias = Object.keys(ALIASES).find((prefix) => specifier.startsWith(prefix))
  if (alias) lexical = ALIASES[alias] + specifier.slice(alias.length)
  else if (specifier.startsWith('.'))
    lexical = toPosix(path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier)))
  else return null
  const candidates = [
    lexical,
    ...['.ts', '.mts', '.mjs', '.vue'].map((ext) => lexical + ext),
    ...(lexical.endsWith('.js') ? [lexical.slice(0, -3) + '.ts'] : []),
    `${lexical}/index.ts`,
  ]
  return candidates.find((c) => isFile(path.join(root, c))) ?? lexical
}

/** The import graph of every source file under `folders` (repository-relative). */
export function readImportGraph(root: string, folders: readonly string[]): ImportGraph {
  const files = listSources(root, folders)
  const edges: ImportEdge[] = []
  const packages: PackageImport[] = []
  for (const from of files) {
    const text = readFileSync(path.join(root, from), 'utf8')
    for (const { specifier, typeOnly } of importsOf(from, text)) {
      const to = resolveSpecifier(root, from, specifier)
      if (to === null) packages.push({ from, specifier })
      else edges.push({ from, specifier, to, typeOnly })
    }
  }
  return { files, edges, packages }
}

/**
 * The strongly connected components of more than one file (and files importing themselves): each is an
 * import cycle. Tarjan's algorithm, iterative so a long chain cannot overflow the stack.
 */
export function importCycles(files: readonly string[], edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]))
  for (const e of edges) if (next.has(e.to)) next.get(e.from)?.push(e.to)
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: string[] = []
  const cycles: string[][] = []
  let counter = 0
  for (const start of files) {
    if (index.has(start)) continue
    const work: { node: string; child: number }[] = [{ node: start, child: 0 }]
    index.set(start, counter)
    low.set(start, counter++)
    stack.push(start)
    onStack.add(start)
    while (work.length > 0) {
      const frame = work[work.length - 1]
      const children = next.get(frame.node) ?? []
      if (frame.child < children.length) {
        const child = children[frame.child++]
        if (!index.has(child)) {
          index.set(child, counter)
          low.set(child, counter++)
          stack.push(child)
          onStack.add(child)
          work.push({ node: child, child: 0 })
        } else if (onStack.has(child)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(child)!))
        }
        continue
      }
      work.pop()
      if (work.length > 0) {
        const parent = work[work.length - 1].node
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!))
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = []
        let member: string
        do {
          member = stack.pop()!
          onStack.delete(member)
          component.push(member)
        } while (member !== frame.node)
        const selfLoop = component.length === 1 && children.includes(frame.node)
        if (component.length > 1 || selfLoop) cycles.push(component.sort())
      }
    }
  }
  return cycles
}

/**
 * The shortest loops through the files of one cycle (at most `limit`, each listed from its first file back
 * to it, type-only steps marked), so a report names the imports to cut rather than the whole component.
 */
export function shortestLoops(component: readonly string[], edges: readonly ImportEdge[], limit = 6): string[][] {
  const members = new Set(component)
  const next = new Map<string, ImportEdge[]>()
  for (const e of edges) {
    if (members.has(e.from) && members.has(e.to) && e.from !== e.to) next.set(e.from, [...(next.get(e.from) ?? []), e])
  }
  const loops: string[][] = []
  const seen = new Set<string>()
  for (const start of component) {
    // Breadth-first from `start` until it is reached again.
    const via = new Map<string, ImportEdge>()
    const queue = [start]
    let closing: ImportEdge | undefined
    while (queue.length > 0 && !closing) {
      const node = queue.shift()!
      for (const e of next.get(node) ?? []) {
        if (e.to === start) {
          closing = e
          break
        }
        if (!via.has(e.to)) {
          via.set(e.to, e)
          queue.push(e.to)
        }
      }
    }
    if (!closing) continue
    const steps: ImportEdge[] = [closing]
    for (let at = closing.from; at !== start; at = via.get(at)!.from) steps.unshift(via.get(at)!)
    const key = steps
      .map((e) => e.from)
      .sort()
      .join('|')
    if (seen.has(key)) continue
    seen.add(key)
    loops.push([start, ...steps.map((e) => (e.typeOnly ? `${e.to} (type only)` : e.to))])
    if (loops.length >= limit) break
  }
  return loops
}
