'use strict';
// Chat with the stock QuickBlox JS SDK: two Node processes (Alice and Bob) over our XMPP WebSocket and REST.
// See scenario-chat.js for the steps.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { startServer } = require('./server');

const SCENARIO = path.join(__dirname, 'scenario-chat.js');

// Runs one role; resolves with its reports. `onReport` sees each report as it arrives.
function runRole(srv, role, users, onReport = () => {}) {
  const target = { api: srv.apiHost, ws: srv.httpUrl.replace(/^http/, 'ws') + '/ws', app: srv.app, users };
  const child = spawn(process.execPath, [SCENARIO], {
    env: { ...process.env, ROLE: role, SWITCHBOARD_SDK_TARGET: JSON.stringify(target), NODE_EXTRA_CA_CERTS: srv.certPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const reports = [];
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('@@SB ')) return;
    const m = JSON.parse(line.slice(5));
    reports.push(m);
    onReport(m);
  });
  const done = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, reports, stderr })));
  return { child, done, reports };
}

describe('chat with the QuickBlox JS SDK over XMPP WebSocket', () => {
  let srv;
  before(async () => { srv = await startServer({ name: 'sdk-chat' }); });
  after(async () => { if (srv && !srv.exitInfo()) await srv.stop(); });

  it('private and group chat, read markers, typing, and REST state', async () => {
    const setup = await runRole(srv, 'setup').done;
    const users = (setup.reports.find((r) => r.users) || {}).users;
    assert.ok(users, `setup failed: ${JSON.stringify(setup.reports)} ${setup.stderr.slice(-2000)}`);

    let bobReady;
    const ready = new Promise((resolve) => { bobReady = resolve; });
    const bob = runRole(srv, 'bob', users, (m) => { if (m.ready || m.error) bobReady(m); });
    const first = await Promise.race([ready, bob.done.then((r) => ({ exited: r }))]);
    assert.ok(first.ready, `bob did not connect: ${JSON.stringify(first)} ${JSON.stringify(bob.reports)}`);

    const alice = await runRole(srv, 'alice', users).done;
    bob.child.kill('SIGTERM');
    const bobResult = await bob.done;
    const errors = [...alice.reports, ...bobResult.reports].filter((r) => r.error);
    assert.deepEqual(errors, [], `scenario errors; alice stderr: ${alice.stderr.slice(-2000)}`);
    assert.equal(alice.code, 0, `alice exited ${alice.code}: ${JSON.stringify(alice.reports)}`);
    assert.ok(alice.reports.some((r) => r.done), 'alice finished every step');
    assert.ok(bobResult.reports.some((r) => r.step), `bob answered: ${JSON.stringify(bobResult.reports)}`);
  });
});
