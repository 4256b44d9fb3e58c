'use strict';
// Real browsers against the SFU: three headless Chromium tabs (fake camera and microphone) join one
// room through the Janus videoroom API at /janus, each publishes and subscribes to the other two, and
// each must decode video frames from both (getStats: framesDecoded > 0).
//
// Debian's chromium at /usr/bin/chromium (or CHROMIUM_BIN), driven by puppeteer-core; never a browser
// download. With CI=true a missing browser is a failure, not a skip.

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const { startServer } = require('../sdk/server');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const IS_CI = ['true', '1', 'yes'].includes(String(process.env.CI || '').toLowerCase());
const SECRET = crypto.randomBytes(24).toString('hex');
const ROOM = 'dialog-' + crypto.randomBytes(6).toString('hex');
const DEADLINE_MS = 90000;

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

// The grant the control plane mints (HS256; claims as in sfu/src/grant.rs).
function grant(user, room) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ iss: 'switchboard', app: 1, sub: String(user), room, role: 'publisher', iat: now, exp: now + 600 }));
  const sig = b64url(crypto.createHmac('sha256', SECRET).update(`${header}.${claims}`).digest());
  return `${header}.${claims}.${sig}`;
}

function servePage() {
  const html = fs.readFileSync(path.join(__dirname, 'conference-page.html'));
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const haveBrowser = fs.existsSync(CHROMIUM);
if (!haveBrowser && IS_CI) {
  test('Chromium is installed', () => assert.fail(`${CHROMIUM} is missing (CI=true: the browser suite may not be skipped)`));
}

test('three Chromium tabs publish and each decodes the other two', { skip: !haveBrowser && `${CHROMIUM} missing`, timeout: DEADLINE_MS + 30000 }, async (t) => {
  const puppeteer = require('puppeteer-core');
  const srv = await startServer({ name: 'browser-test', extraArgs: ['--sfu-grant-secret', SECRET, '--sfu-public-ip', '127.0.0.1', '--sfu-workers', '1'] });
  t.after(() => srv.stop());
  const pageServer = await servePage();
  t.after(() => pageServer.close());
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-chromium-'));
  t.after(() => fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10 }));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
  t.after(async () => { await browser.close(); });

  const pagePort = pageServer.address().port;
  const wsBase = srv.httpUrl.replace(/^http/, 'ws') + '/janus';
  const ids = [101, 102, 103];
  const pages = [];
  for (const id of ids) {
    const page = await browser.newPage();
    page.on('console', (m) => { if (process.env.SWITCHBOARD_TEST_LOG) console.log(`[tab ${id}]`, m.text()); });
    const ws = `${wsBase}?token=${grant(id, ROOM)}`;
    const url = `http://127.0.0.1:${pagePort}/?ws=${encodeURIComponent(ws)}&room=${encodeURIComponent(ROOM)}&id=${id}`;
    await page.goto(url);
    try {
      await page.evaluate(() => window.run());
    } catch (e) {
      assert.fail(`tab ${id} could not join and publish: ${e.message}`);
    }
    pages.push({ id, page });
  }
  for (const { id, page } of pages) {
    try {
      await page.waitForFunction(async () => {
        const f = await window.framesDecoded();
        return Object.values(f).filter((n) => n > 0).length >= 2;
      }, { timeout: DEADLINE_MS, polling: 250 });
    } catch (e) {
      const frames = await page.evaluate(() => window.framesDecoded());
      const errors = await page.evaluate(() => window.state.errors);
      assert.fail(`tab ${id} did not decode two remote feeds: ${JSON.stringify(frames)} errors ${JSON.stringify(errors)}`);
    }
    const frames = await page.evaluate(() => window.framesDecoded());
    const others = ids.filter((x) => x !== id).map(String).sort();
    assert.deepStrictEqual(Object.keys(frames).sort(), others, `tab ${id} subscribes to the others`);
  }
});
