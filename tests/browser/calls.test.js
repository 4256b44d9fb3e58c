'use strict';
// Mesh (1:1) calls with the official QuickBlox JS SDK in two headless Chromium pages: each page loads
// the SDK's browser bundle (quickblox.min.js, from tests/sdk/node_modules), signs up, fetches ICE
// servers from GET /calls/ice_servers.json, logs in over HTTPS and connects chat over our XMPP
// WebSocket (/ws). Alice calls Bob with QB.webrtc (fake camera and microphone), Bob accepts, both
// decode remote video (getStats framesDecoded > 0), Alice hangs up and both see the hang-up. The call
// runs twice: ICE as the browser pleases, then iceTransportPolicy 'relay' through our TURN relay.
// Then a mesh of three pages (Alice rings Bob and Carol): everyone decodes both others, the call
// outlives Alice's hang-up, and the history shows it ended with both opponents.
//
// Chromium trusts only our self-signed certificate (--ignore-certificate-errors-spki-list with its
// SPKI hash), never any certificate. Debian's chromium at /usr/bin/chromium (or CHROMIUM_BIN), driven
// by puppeteer-core; with CI=true a missing browser is a failure, not a skip.

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
const STEP_MS = 45000;
const SDK_BUNDLE = path.join(__dirname, '..', 'sdk', 'node_modules', 'quickblox', 'quickblox.min.js');

function servePage() {
  const files = {
    '/': ['text/html', fs.readFileSync(path.join(__dirname, 'calls-page.html'))],
    '/quickblox.min.js': ['application/javascript', fs.readFileSync(SDK_BUNDLE)],
  };
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': file[0] });
    res.end(file[1]);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list matches.
function spkiHash(certPath) {
  const cert = new crypto.X509Certificate(fs.readFileSync(certPath));
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('base64');
}

async function waitFor(page, who, fn, arg, what) {
  try {
    await page.waitForFunction(fn, { timeout: STEP_MS, polling: 200 }, arg);
  } catch (e) {
    const state = await page.evaluate(() => ({ events: window.state.events, errors: window.state.errors }));
    assert.fail(`${who}: ${what} did not happen: ${JSON.stringify(state)}`);
  }
}

const haveBrowser = fs.existsSync(CHROMIUM);
if (!haveBrowser && IS_CI) {
  test('Chromium is installed', () => assert.fail(`${CHROMIUM} is missing (CI=true: the browser suite may not be skipped)`));
}

test('QuickBlox WebRTC calls between two Chromium pages', { skip: !haveBrowser && `${CHROMIUM} missing`, timeout: 300000 }, async (t) => {
  assert.ok(fs.existsSync(SDK_BUNDLE), `${SDK_BUNDLE} is missing (npm ci in tests/sdk)`);
  const puppeteer = require('puppeteer-core');
  // Both browsers' relayed addresses are on loopback: the relay must be allowed to reach them.
  const srv = await startServer({ name: 'browser-calls', extraArgs: ['--turn-allow-peers', '127.0.0.1/32'] });
  t.after(() => srv.stop());
  const pageServer = await servePage();
  t.after(() => pageServer.close());
  const pageUrl = `http://127.0.0.1:${pageServer.address().port}/`;
  const spki = spkiHash(srv.certPath);
  const base = { app: srv.app, api: srv.apiHost, ws: srv.httpUrl.replace(/^http/, 'ws') + '/ws' };

  async function launch() {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-chromium-'));
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        `--ignore-certificate-errors-spki-list=${spki}`],
    });
    return {
      browser,
      close: async () => {
        await browser.close();
        fs.rmSync(profile, { recursive: true, force: true });
      },
    };
  }

  async function user(browser, login, policy) {
    const page = await browser.newPage();
    page.on('console', (m) => { if (process.env.SWITCHBOARD_TEST_LOG) console.log(`[${login}]`, m.text()); });
    page.on('pageerror', (e) => console.log(`[${login}] page error:`, e.message));
    const target = { ...base, login, password: `${login}-password` };
    await page.goto(pageUrl);
    const prepared = await page.evaluate((tg) => window.prepare(tg), target);
    assert.ok(prepared.iceServers.some((s) => (s.urls || []).some((u) => u.startsWith('turn:'))), JSON.stringify(prepared));
    await page.goto(pageUrl);
    const id = await page.evaluate((tg) => window.start(tg), { ...target, iceServers: prepared.iceServers, policy });
    assert.strictEqual(id, prepared.userId);
    return { page, id, login };
  }

  async function runCall(st, policy) {
    const { browser, close } = await launch();
    try {
      const alice = await user(browser, 'alice', policy);
      const bob = await user(browser, 'bob', policy);
      await alice.page.evaluate((id) => window.call([id]), bob.id);
      await waitFor(bob.page, 'bob', () => window.state.events.includes('accepted'), null, 'the incoming call');
      await waitFor(alice.page, 'alice', (id) => window.state.events.includes('accept:' + id), bob.id, 'the accept');
      for (const [me, other] of [[alice, bob], [bob, alice]]) {
        await waitFor(me.page, me.login, (id) => window.state.events.includes('remote:' + id), other.id, 'the remote stream');
        await waitFor(me.page, me.login, async () => (await window.mediaStats()).frames > 0, null, 'decoded remote video');
        const stats = await me.page.evaluate(() => window.mediaStats());
        assert.ok(stats.frames > 0, `${me.login} decoded ${stats.frames} frames`);
        st.diagnostic(`${me.login}: ${stats.frames} frames decoded, selected pairs ${JSON.stringify(stats.pairs)}`);
        if (policy === 'relay') {
          assert.ok(stats.pairs.length > 0, `${me.login} has a selected candidate pair`);
          for (const [local, remote] of stats.pairs) {
            assert.strictEqual(local, 'relay', `${me.login}'s selected pair runs through TURN: ${JSON.stringify(stats.pairs)}`);
            assert.strictEqual(remote, 'relay', `${me.login}'s peer is relayed too: ${JSON.stringify(stats.pairs)}`);
          }
        }
      }
      await alice.page.evaluate(() => window.hangUp());
      await waitFor(bob.page, 'bob', (id) => window.state.events.includes('stop:' + id), alice.id, 'the hang-up (onStopCallListener)');
      await waitFor(bob.page, 'bob', () => window.state.events.includes('closed'), null, 'the session close');
      await waitFor(alice.page, 'alice', () => window.state.events.includes('closed'), null, 'the session close');
      for (const who of [alice, bob]) {
        const errors = await who.page.evaluate(() => window.state.errors);
        assert.deepStrictEqual(errors, [], `${who.login} errors`);
      }
      // The finished call is in both users' history (newest first).
      const sessionId = await alice.page.evaluate(() => window.state.session.ID);
      for (const who of [alice, bob]) {
        const history = await who.page.evaluate(() => window.callHistory());
        assert.strictEqual(history.status, 200, JSON.stringify(history));
        const last = history.body.items[0];
        assert.strictEqual(last.session_id, sessionId, JSON.stringify(history.body));
        assert.strictEqual(last.caller_id, alice.id);
        assert.deepStrictEqual(last.opponents_ids, [bob.id]);
        assert.strictEqual(last.state, 'ended');
        assert.strictEqual(last.call_type, 1);
      }
    } finally {
      await close();
    }
  }

  await t.test('direct ICE', (st) => runCall(st, undefined));
  await t.test("iceTransportPolicy 'relay' through our TURN", (st) => runCall(st, 'relay'));

  // A mesh: Alice rings Bob and Carol, both accept, and the SDK links Bob and Carol too (under
  // Alice's session id). Everyone decodes both others; the call outlives Alice and ends when Bob
  // leaves Carol alone.
  async function runMesh(st) {
    const { browser, close } = await launch();
    try {
      const people = [];
      for (const login of ['alice', 'bob', 'carol']) people.push(await user(browser, login, undefined));
      const [alice, bob, carol] = people;
      await alice.page.evaluate((ids) => window.call(ids), [bob.id, carol.id]);
      for (const who of [bob, carol]) {
        await waitFor(who.page, who.login, () => window.state.events.includes('accepted'), null, 'the incoming call');
      }
      for (const me of people) {
        const others = people.filter((p) => p !== me).map((p) => String(p.id));
        await waitFor(me.page, me.login, async (ids) => {
          const stats = await window.mediaStats();
          return ids.every((id) => (stats.byPeer[id] || 0) > 0);
        }, others, `video decoded from ${others.join(' and ')}`);
        const stats = await me.page.evaluate(() => window.mediaStats());
        st.diagnostic(`${me.login}: frames by peer ${JSON.stringify(stats.byPeer)}`);
      }
      await alice.page.evaluate(() => window.hangUp());
      for (const who of [bob, carol]) {
        await waitFor(who.page, who.login, (id) => window.state.events.includes('stop:' + id), alice.id, "Alice's hang-up");
      }
      await bob.page.evaluate(() => window.hangUp());
      await waitFor(carol.page, 'carol', (id) => window.state.events.includes('stop:' + id), bob.id, "Bob's hang-up");
      await waitFor(carol.page, 'carol', () => window.state.events.includes('closed'), null, 'the session close');
      const history = await carol.page.evaluate(() => window.callHistory());
      const last = history.body.items[0];
      assert.strictEqual(last.caller_id, alice.id, JSON.stringify(history.body));
      assert.deepStrictEqual([...last.opponents_ids].sort((a, b) => a - b), [bob.id, carol.id].sort((a, b) => a - b));
      assert.strictEqual(last.state, 'ended');
      for (const who of people) {
        assert.deepStrictEqual(await who.page.evaluate(() => window.state.errors), [], `${who.login} errors`);
      }
    } finally {
      await close();
    }
  }
  await t.test('a mesh of three (caller + 2 opponents)', (st) => runMesh(st));

  await t.test('the server counted every call', async () => {
    const metrics = await (await fetch(`${srv.httpUrl}/metrics`)).text();
    const value = (name) => Number((metrics.match(new RegExp(`^${name} (\\d+)`, 'm')) || [])[1]);
    assert.strictEqual(value('switchboard_calls_started_total'), 3, metrics);
    assert.strictEqual(value('switchboard_calls_answered_total'), 3);
    assert.strictEqual(value('switchboard_calls_ended_total'), 3);
    assert.strictEqual(value('switchboard_calls_active'), 0);
  });
});
