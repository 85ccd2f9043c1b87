// The desktop app's trust decisions, tested without Electron: the IPC sender check, the external-link
// allow-list, and the app:// handler's mapping from URL to bundle file (and its refusals).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { RENDERER_CSP, serveBundleRequest } from './app-protocol'
import { APP_ENTRY, EXTERNAL_LINKS, bundleFileFor, isAllowedExternalUrl, isTrustedSender } from './security'

const tmp = mkdtempSync(path.join(os.tmpdir(), 'whittle-main-security-'))
const bundle = path.join(tmp, 'renderer')
mkdirSync(path.join(bundle, 'assets'), { recursive: true })
writeFileSync(path.join(bundle, 'index.html'), '<!doctype html><title>w</title>')
writeFileSync(path.join(bundle, 'assets', 'app.js'), 'console.log(1)')
writeFileSync(path.join(tmp, 'secret.txt'), 'outside the bundle')
symlinkSync(path.join(tmp, 'secret.txt'), path.join(bundle, 'assets', 'link.js'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('IPC sender check', () => {
  it('accepts only the app origin’s top-level frame', () => {
    expect(isTrustedSender({ url: APP_ENTRY, parent: null })).toBe(true)
    expect(isTrustedSender({ url: 'app://bundle/', parent: null })).toBe(true)
  })

  it('refuses a missing frame, sub-frames, and every other origin', () => {
    expect(isTrustedSender(null)).toBe(false)
    expect(isTrustedSender(undefined)).toBe(false)
    expect(isTrustedSender({ url: APP_ENTRY, parent: { url: APP_ENTRY } })).toBe(false)
    for (const url of [
      '',
      'file:///index.html',
      'file:///tmp/evil.html',
      'http://127.0.0.1:5173/',
      'https://example.com/',
      'data:text/html,x',
      'about:blank',
      'about:srcdoc',
      'app://other/index.html',
      'app://bundle:1/index.html',
      'app://user@bundle/',
      'app:bundle/index.html',
      'devtools://devtools/',
      'not a url',
    ]) {
      expect(isTrustedSender({ url, parent: null }), url).toBe(false)
    }
  })
})

describe('external links', () => {
  it('opens nothing that is not on the allow-list', () => {
    expect(EXTERNAL_LINKS.every((u) => u.startsWith('https://'))).toBe(true)
    for (const url of [
      'https://evil.example/',
      'http://example.com/',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'smb://host/share',
      'ms-settings:',
      '',
    ]) {
      expect(isAllowedExternalUrl(url), url).toBe(false)
    }
  })

  it('matches allowed links exactly, never by prefix or look-alike', () => {
    const allowed = ['https://example.org/docs/whittle']
    expect(isAllowedExternalUrl('https://example.org/docs/whittle', allowed)).toBe(true)
    for (const url of [
      'https://example.org/docs/whittle/../../evil',
      'https://example.org/docs/whittle?x=1',
      'https://example.org.evil.example/docs/whittle',
      'https://user@example.org/docs/whittle',
      'http://example.org/docs/whittle',
      'https://example.org/docs/whittleX',
    ]) {
      expect(isAllowedExternalUrl(url, allowed), url).toBe(false)
    }
  })
})

describe('app:// protocol', () => {
  it('maps app URLs to files inside the bundle', () => {
    expect(bundleFileFor('app://bundle/', bundle)).toBe(path.join(bundle, 'index.html'))
    expect(bundleFileFor('app://bundle/assets/app.js?v=1#x', bundle)).toBe(path.join(bundle, 'assets', 'app.js'))
  })

  it('refuses traversal, other origins and malformed paths', () => {
    for (const url of [
      'app://bundle/../secret.txt',
      'app://bundle/%2e%2e/secret.txt',
      'app://bundle/..%2Fsecret.txt',
      'app://bundle/assets/..%2F..%2Fsecret.txt',
      'app://bundle/..%5Csecret.txt',
      'app://bundle/%',
      'app://bundle/%c0%ae%c0%ae/secret.txt',
      'app://bundle/a%00.js',
      'app://other/index.html',
      'file:///etc/passwd',
      'app://bundle//etc/passwd/..',
      'https://bundle/index.html',
    ]) {
      const file = bundleFileFor(url, bundle)
      if (file !== null) expect(path.relative(bundle, file).startsWith('..'), `${url} → ${file}`).toBe(false)
      else expect(file, url).toBeNull()
    }
    expect(bundleFileFor('app://bundle/..%2Fsecret.txt', bundle)).toBeNull()
    expect(bundleFileFor('app://bundle/%', bundle)).toBeNull()
  })

  it('serves bundle files with their type (and the CSP on pages), and 404s everything else', async () => {
    const page = await serveBundleRequest(APP_ENTRY, 'GET', bundle)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(page.headers.get('content-security-policy')).toBe(RENDERER_CSP)
    expect(await page.text()).toBe(readFileSync(path.join(bundle, 'index.html'), 'utf8'))
    const js = await serveBundleRequest('app://bundle/assets/app.js', 'GET', bundle)
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(await js.text()).toBe('console.log(1)')
    // A symlink inside the bundle that leads out of it, a folder, a missing file, another method.
    expect((await serveBundleRequest('app://bundle/assets/link.js', 'GET', bundle)).status).toBe(404)
    expect((await serveBundleRequest('app://bundle/assets', 'GET', bundle)).status).toBe(404)
    expect((await serveBundleRequest('app://bundle/nope.js', 'GET', bundle)).status).toBe(404)
    expect((await serveBundleRequest('app://bundle/..%2Fsecret.txt', 'GET', bundle)).status).toBe(404)
    expect((await serveBundleRequest(APP_ENTRY, 'POST', bundle)).status).toBe(400)
  })
})
