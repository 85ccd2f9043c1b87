// The contract's implementation, shared by Electron's IPC handlers and web mode's WebSocket server.
// Transport code only moves (method, params) in and results or ApiErrors out; everything else is here.

import { randomUUID } from 'node:crypto'
import { lstat, readFile } from 'node:fs/promises'
import path from 'node:path'
import type {
  ApiCall,
  ApiError,
  AppInfo,
  HeadWeights,
  JobSpec,
  JobUpdate,
  ModelSummary,
  RecentModel,
  RecipeDoc,
  RecipePreset,
  TensorInfo,
} from '../contract/api'
import { methodCatalogue } from '../engine/compress/methods'
import { predictCompression } from '../engine/compress/predict'
import { loadPresets } from '../engine/compress/presets'
import { parseRecipeText, recipeToYaml, validateRecipe } from '../engine/compress/recipe/recipe'
import { describeError, fromKernelError, isWhittleError } from '../engine/errors'
import { WhittleError } from '../engine/errors'
import { JobRegistry } from '../engine/jobs/job-registry'
import { headWeights } from '../engine/analysis/head-weights'
import type { CompressionProvenance } from '../engine/export/export-model'
import { planGgufExport } from '../engine/export/gguf/export-gguf'
import { readImatrixProfile } from '../engine/analysis/imatrix-profile'
import type { GgufExportType, GgufTypeFlags } from '../contract/gguf-export-types'
import { loadModel, type LoadedModel } from '../engine/model/loaded-model'
import { jobRunner } from './job-runners'
import { PathPolicy, isStrictlyInside, type PathUse } from './path-policy'
import { appRoot, bundledText, bundledTextDir, defaultExportDir } from './paths'
import { RecentModels, defaultConfigDir } from './recents'
import { ResultsLog } from './results-log'
import { validateRequest } from './validate'

export interface HostOptions {
  mode: 'electron' | 'web'
  version: string
  demoPath: string | null
  startupPath?: string | null
  configDir?: string
  /** Electron provides a native dialog; web mode has none. */
  pickModel?: (folder: boolean) => Promise<string | null>
  /**
   * Electron: every path argument of every call must be one the user chose (dialog, drop seen by the
   * preload, CLI, recents) or lie inside a granted folder (bundled texts; the export folder, the only place
   * exports may be written), so a compromised renderer can neither read nor write arbitrary files through
   * the main process. See path-policy.ts. Web mode leaves this off: there the token-holding user types the
   * path, which is their own choice.
   */
  restrictPaths?: boolean
  /** Paths the user named outside the UI (the CLI argument). */
  preapprovedPaths?: string[]
  /** Where suggested export paths go (default $WHITTLE_EXPORT_DIR, else ~/whittle-exports). */
  exportDir?: string
}

/** suggestExportPath gives up after <stem>-2 … <stem>-N all exist. */
const MAX_EXPORT_SUFFIX = 10_000

/** At most this many models stay open; the oldest is dropped first. */
const MAX_OPEN_MODELS = 8

export class WhittleService {
  readonly jobs = new JobRegistry()
  private readonly models = new Map<string, LoadedModel>()
  /** Compression results by model id: what their export needs (source, report, quantization grids). */
  private readonly compressions = new Map<string, CompressionProvenance>()
  /** Reports this session's exports wrote: the only files readReport serves. */
  private readonly reports = new Set<string>()
  private readonly recents: RecentModels
  /** Every compression's point for the Compare view, kept across restarts. */
  private readonly results: ResultsLog
  /** Set when restrictPaths is on: checks every path argument before any call runs. */
  private readonly policy: PathPolicy | null

  constructor(private readonly host: HostOptions) {
    this.recents = new RecentModels(path.join(host.configDir ?? defaultConfigDir(), 'recent-models.json'))
    this.results = new ResultsLog(path.join(host.configDir ?? defaultConfigDir(), 'results.json'))
    this.policy = host.restrictPaths
      ? new PathPolicy({
          chosen: (host.preapprovedPaths ?? []).concat(host.startupPath ? [host.startupPath] : []),
          readFolders: [bundledTextDir()],
          writeFolders: [this.exportDir()],
          isRecent: (p) => this.recents.has(p),
        })
      : null
  }

  /** Records a path the user chose outside the renderer's reach (a drop observed by the preload). */
  approvePath(p: string): void {
    this.policy?.choose(p)
  }

  /** The folder suggested export paths go into; in the desktop app, the one folder exports may be written to. */
  exportDir(): string {
    return path.resolve(this.host.exportDir ?? defaultExportDir())
  }

  /** Validates, runs, and converts any failure into the ApiError that crosses the bridge. */
  async handle(
    method: ApiCall,
    params: unknown,
  ): Promise<{ ok: true; result: unknown } | { ok: false; error: ApiError }> {
    try {
      const paths: PathUse[] = []
      const req = validateRequest(method, params, paths)
      // The one place every path argument of every call is checked (validate.ts lists them all).
      if (this.policy) for (const use of paths) await this.policy.check(use)
      return { ok: true, result: await this.dispatch(method, req) }
    } catch (thrown) {
      const e = fromKernelError(thrown)
      return { ok: false, error: { message: describeError(e), code: isWhittleError(e) ? e.code : 'internal' } }
    }
  }

  onJob(listener: (u: JobUpdate) => void): () => void {
    return this.jobs.onUpdate(listener)
  }

  private dispatch(method: ApiCall, req: unknown): Promise<unknown> {
    switch (method) {
      case 'appInfo':
        return this.appInfo()
      case 'pickModel':
        return this.pickModel(req as { folder: boolean })
      case 'openModel':
        return this.openModel((req as { path: string }).path)
      case 'openDemo':
        return this.openDemo()
      case 'recentModels':
        return this.recents.list()
      case 'listTensors':
        return this.listTensors((req as { modelId: string }).modelId)
      case 'startJob':
        return Promise.resolve(this.startJob(req as JobSpec))
      case 'cancelJob':
        return Promise.resolve(void this.jobs.cancel((req as { id: string }).id))
      case 'jobStatus':
        return Promise.resolve(this.jobs.get((req as { id: string }).id) ?? null)
      case 'pauseJob':
        return Promise.resolve(void this.jobs.pause((req as { id: string }).id))
      case 'resumeJob':
        return Promise.resolve(void this.jobs.resume((req as { id: string }).id))
      case 'headWeights':
        return this.headWeights(req as { modelId: string; layer: number; head: number })
      case 'recipePresets':
        return this.recipePresets()
      case 'checkRecipe':
        return Promise.resolve(this.checkRecipe(req as { recipe?: RecipeDoc; text?: string }))
      case 'recipeToYaml':
        return Promise.resolve(recipeToYaml(validateRecipe((req as { recipe: RecipeDoc }).recipe)))
      case 'predictCompression': {
        const r = req as { modelId: string; recipe: RecipeDoc }
        return Promise.resolve(predictCompression(this.model(r.modelId), validateRecipe(r.recipe)))
      }
      case 'suggestExportPath':
        return this.suggestExportPath(req as { modelId: string; format: string; ggufType?: string })
      case 'readReport':
        return this.readReport(req as { path: string })
      case 'listResults':
        return this.results.list(this.model((req as { modelId: string }).modelId).files.path)
      case 'listMethods':
        return Promise.resolve(methodCatalogue())
      case 'planGgufExport': {
        const r = req as { modelId: string; ggufType: GgufExportType; gguf?: GgufTypeFlags }
        return Promise.resolve({
          type: r.ggufType,
          ...planGgufExport(this.model(r.modelId), { ...r.gguf, type: r.ggufType }),
        })
      }
      case 'readImatrix': {
        const r = req as { path: string; modelId?: string }
        const model = r.modelId === undefined ? null : this.model(r.modelId)
        return readImatrixProfile(r.path, model && { arch: model.arch, shape: (name) => model.entry(name).shape })
      }
    }
  }

  async appInfo(): Promise<AppInfo> {
    return {
      mode: this.host.mode,
      version: this.host.version,
      canPickFiles: !!this.host.pickModel,
      demoPath: this.host.demoPath,
      evalTextPath: bundledText('eval'),
      startupPath: this.host.startupPath ?? null,
    }
  }

  async pickModel({ folder }: { folder: boolean }): Promise<string | null> {
    if (!this.host.pickModel) return null
    const chosen = await this.host.pickModel(folder)
    if (chosen) this.approvePath(chosen)
    return chosen
  }

  async openModel(p: string): Promise<ModelSummary> {
    const model = await loadModel(p)
    this.remember(model)
    await this.recents.add(model.files.path).catch(() => undefined)
    return model.summary
  }

  async openDemo(): Promise<ModelSummary> {
    if (!this.host.demoPath) throw new WhittleError('not-found', null, 'this build has no demo model')
    const model = await loadModel(this.host.demoPath)
    this.remember(model)
    return model.summary
  }

  async listTensors(modelId: string): Promise<TensorInfo[]> {
    return this.model(modelId).tensors
  }

  recentModels(): Promise<RecentModel[]> {
    return this.recents.list()
  }

  startJob(spec: JobSpec): string {
    return this.jobs.start(
      spec.kind,
      jobRunner(spec, this.model(spec.modelId), {
        registerModel: (m, compression) => this.registerDerived(m, compression),
        compressionOf: (id) => this.compressions.get(id) ?? null,
        reportWritten: (p) => {
          this.reports.add(path.resolve(p))
          this.policy?.grantRead(p)
        },
        recordResult: (p) => this.results.add(p),
      }),
    ).id
  }

  async headWeights(req: { modelId: string; layer: number; head: number }): Promise<HeadWeights> {
    return headWeights(this.model(req.modelId), req.layer, req.head)
  }

  /** Opens an in-memory derived model (e.g. a compression result) under a new id. */
  private registerDerived(m: LoadedModel, compression?: CompressionProvenance): string {
    const id = randomUUID()
    const derived: LoadedModel = Object.assign(Object.create(null) as LoadedModel, m, {
      id,
      summary: { ...m.summary, id, path: `${m.summary.path} (compressed)` },
    })
    this.remember(derived)
    if (compression) this.compressions.set(id, compression)
    return id
  }

  /**
   * A destination that does not exist yet: <export folder>/<model>-<format>[-<type>][-n]. format and
   * ggufType are checked against the known lists by validate.ts, and the name is checked again here to be a
   * single entry of the export folder, so the only paths probed (and so revealed to exist or not) are
   * names this method made inside that folder.
   */
  async suggestExportPath(req: { modelId: string; format: string; ggufType?: string }): Promise<string> {
    const m = this.model(req.modelId)
    const dir = this.exportDir()
    const base =
      path
        .basename(m.files.path)
        .replace(/\.(gguf|safetensors)$/i, '')
        .replace(/[^\w.-]+/g, '_')
        .replace(/^\.+/, '') || 'model'
    const stem = [base, req.format, req.ggufType]
      .filter(Boolean)
      .join('-')
      .replace(/[^\w.-]+/g, '_')
    for (let n = 1; n <= MAX_EXPORT_SUFFIX; n++) {
      const candidate = path.join(dir, n === 1 ? stem : `${stem}-${n}`)
      if (path.dirname(candidate) !== dir || !isStrictlyInside(candidate, dir))
        throw new WhittleError('validation', null, `suggestExportPath: "${stem}" is not a plain file name`)
      // lstat: a symlink left under this name counts as taken, and its target is never looked at.
      if (
        !(await lstat(candidate).then(
          () => true,
          () => false,
        ))
      )
        return candidate
    }
    throw new WhittleError(
      'validation',
      dir,
      `suggestExportPath: ${MAX_EXPORT_SUFFIX} exports named ${stem} already exist; choose a destination`,
    )
  }

  async readReport(req: { path: string }): Promise<string> {
    const p = path.resolve(req.path)
    if (!this.reports.has(p)) throw new WhittleError('validation', p, 'not a report this session exported')
    return readFile(p, 'utf8')
  }

  async recipePresets(): Promise<RecipePreset[]> {
    return loadPresets(path.join(appRoot(), 'resources', 'recipes'))
  }

  checkRecipe(req: { recipe?: RecipeDoc; text?: string }): RecipeDoc {
    const recipe = req.text !== undefined ? parseRecipeText(req.text, 'recipe') : validateRecipe(req.recipe)
    return recipe as RecipeDoc
  }

  private model(id: string): LoadedModel {
    const m = this.models.get(id)
    if (!m) throw new WhittleError('not-found', null, `no open model with id ${id}; open it again`)
    return m
  }

  private remember(model: LoadedModel): void {
    this.models.set(model.id, model)
    while (this.models.size > MAX_OPEN_MODELS) {
      const oldest = this.models.keys().next().value!
      this.models.delete(oldest)
      this.compressions.delete(oldest)
      this.results.forget(oldest)
    }
  }
}
