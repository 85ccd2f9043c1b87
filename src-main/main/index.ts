// The Electron main process: one window, the engine in this process, the contract over IPC.
// Security posture (README, "Electron security checklist"): the renderer is served from app://bundle by a
// handler that serves only the bundle's files; contextIsolation, no nodeIntegration, a sandboxed renderer
// and a strict CSP; no navigation, no new windows, no webviews, every permission request denied; one IPC
// channel per contract call, each accepted only from the app's own top-level frame, every argument
// validated, and every path argument checked by the service's path policy (restrictPaths).

import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  protocol,
  session,
  shell,
  type IpcMainEvent,
  type IpcMainInvokeEvent,
} from 'electron'
import path from 'node:path'
import { API_CALLS, JOB_EVENT, type ApiCall } from '../contract/api'
import { appRoot, appVersion, demoModelPath, rendererDir } from '../app/paths'
import { WhittleService } from '../app/whittle-service'
import { serveBundleRequest, RENDERER_CSP } from './app-protocol'
import { DROP_CHANNEL, channelFor } from './channels'
import { APP_ENTRY, APP_SCHEME, isAllowedExternalUrl, isTrustedSender } from './security'

// Must happen before 'ready': app:// is a standard, secure origin (like https), so 'self' in the CSP,
// fetch and ES modules work, and the page is a secure context without file://'s extra privileges.
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, corsEnabled: true } },
])
// Every renderer sandboxed, whatever its webPreferences say.
app.enableSandbox()

function modelFromArgv(argv: string[]): string | null {
  const i = argv.indexOf('--model')
  return i >= 0 && argv[i + 1] ? path.resolve(argv[i + 1]) : null
}

function fromTrustedSender(event: IpcMainEvent | IpcMainInvokeEvent): boolean {
  // senderFrame is null once the frame navigated or was destroyed: that is a refusal, not a pass.
  return isTrustedSender(event.senderFrame)
}

async function createWindow(service: WhittleService): Promise<BrowserWindow> {
  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    title: 'Whittle',
    icon: path.join(appRoot(), 'resources', 'icon.png'),
    webPreferences: {
      preload: path.join(appRoot(), 'out', 'preload', 'index.cjs'),
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInSubFrames: false,
      sandbox: true,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      spellcheck: false,
    },
  })
  const unsubscribe = service.onJob((u) => {
    if (!win.isDestroyed()) win.webContents.send(JOB_EVENT, u)
  })
  win.on('closed', unsubscribe)
  await win.loadURL(APP_ENTRY)
  return win
}

async function start(): Promise<void> {
  await app.whenReady()
  protocol.handle(APP_SCHEME, (request) => serveBundleRequest(request.url, request.method, rendererDir()))
  // The app:// handler sets the CSP itself; this covers anything else a window might load.
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [RENDERER_CSP] } })
  })
  session.defaultSession.setPermissionRequestHandler((_wc, _perm, cb) => cb(false))
  session.defaultSession.setPermissionCheckHandler(() => false)

  let win: BrowserWindow | null = null
  const service = new WhittleService({
    mode: 'electron',
    version: appVersion(),
    demoPath: demoModelPath(),
    startupPath: modelFromArgv(process.argv),
    configDir: app.getPath('userData'),
    restrictPaths: true,
    pickModel: async (folder) => {
      const r = await dialog.showOpenDialog(win!, {
        title: folder ? 'Open a model folder' : 'Open a model file',
        properties: [folder ? 'openDirectory' : 'openFile'],
        filters: folder ? [] : [{ name: 'Models', extensions: ['safetensors', 'gguf', 'json'] }],
      })
      return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0]
    },
  })
  for (const call of API_CALLS) {
    ipcMain.handle(channelFor(call), async (event, params) => {
      if (!fromTrustedSender(event))
        return { ok: false, error: { message: 'refused: call from an unexpected frame', code: 'validation' } }
      return service.handle(call as ApiCall, params)
    })
  }
  // Drops are observed by the preload itself (a page cannot forge a File with a real path); the channel
  // still takes messages only from the app's own frame.
  ipcMain.on(DROP_CHANNEL, (event, p: unknown) => {
    if (!fromTrustedSender(event)) return
    if (typeof p === 'string' && p.length < 4096 && !p.includes('\0') && path.isAbsolute(p)) service.approvePath(p)
  })
  win = await createWindow(service)
  app.on('window-all-closed', () => app.quit())
}

// For every web contents, present or future: no navigation, no new windows (links
// on the allow-list open in the system browser), no webviews.
app.on('web-contents-created', (_e, contents) => {
  // The app is one page: it never navigates, not even within app://.
  contents.on('will-navigate', (e) => e.preventDefault())
  contents.on('will-redirect', (e) => e.preventDefault())
  contents.setWindowOpenHandler(({ url }) => {
    if (isAllowedExternalUrl(url)) void shell.openExternal(url)
    return { action: 'deny' }
  })
  contents.on('will-attach-webview', (e) => e.preventDefault())
})
void start()
