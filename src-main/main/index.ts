// The Electron main process: one window, the engine in this process, the contract over IPC.
// Security posture: contextIsolation, no nodeIntegration, a sandboxed renderer, a strict CSP,
// no navigation or new windows, one IPC channel per contract call with every argument validated.

import { app, BrowserWindow, dialog, ipcMain, session, shell } from 'electron'
import path from 'node:path'
import { API_CALLS, JOB_EVENT, type ApiCall } from '../contract/api'
import { appRoot, appVersion, demoModelPath, rendererDir } from '../app/paths'
import { WhittleService } from '../app/whittle-service'
import { DROP_CHANNEL, channelFor } from './channels'

const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

function modelFromArgv(argv: string[]): string | null {
  const i = argv.indexOf('--model')
  return i >= 0 && argv[i + 1] ? path.resolve(argv[i + 1]) : null
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
      sandbox: true,
      webSecurity: true,
      spellcheck: false,
    },
  })
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url)
    return { action: 'deny' }
  })
  win.webContents.on('will-navigate', (e) => e.preventDefault())
  const unsubscribe = service.onJob((u) => {
    if (!win.isDestroyed()) win.webContents.send(JOB_EVENT, u)
  })
  win.on('closed', unsubscribe)
  await win.loadFile(path.join(rendererDir(), 'index.html'))
  return win
}

async function start(): Promise<void> {
  await app.whenReady()
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } })
  })
  session.defaultSession.setPermissionRequestHandler((_wc, _perm, cb) => cb(false))

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
      if (event.senderFrame?.url && !event.senderFrame.url.startsWith('file://')) {
        return { ok: false, error: { message: 'refused: call from an unexpected frame', code: 'validation' } }
      }
      return service.handle(call as ApiCall, params)
    })
  }
  // Drops are observed by the preload itself (a page cannot forge a File with a real path).
  ipcMain.on(DROP_CHANNEL, (_event, p: unknown) => {
    if (typeof p === 'string' && path.isAbsolute(p) && p.length < 4096) service.approvePath(p)
  })
  win = await createWindow(service)
  app.on('window-all-closed', () => app.quit())
}

app.on('web-contents-created', (_e, contents) => {
  contents.on('will-attach-webview', (e) => e.preventDefault())
})
void start()
