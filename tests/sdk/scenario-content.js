'use strict';
// Content (blobs) with the stock `quickblox` SDK: QB.content.createAndUpload (create → multipart upload to the
// URL Switchboard hands out in blob_object_access.params → complete), getInfo/getFile/list/update, downloads by
// QB.content.publicUrl and privateUrl (plain Node https, as an app would fetch them), delete. Same step protocol
// and standalone use as scenario-users.js (run by content.test.js).

const assert = require('node:assert/strict');
const https = require('node:https');
const { runSteps, main, ok, call, fails, fmt } = require('./scenario-users');

// GET a URL with Node's https (the process trusts the server's cert through NODE_EXTRA_CA_CERTS).
function fetchUrl(url) {
  return new Promise((resolve, reject) => {
    https.get(url, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

function buildSteps(target) {
  const QB = require('quickblox');
  const { app, api } = target;
  const sfx = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  const alice = { login: `content_alice_${sfx}`, password: 'alicePass-1' };
  const text = 'hello from the QuickBlox SDK\n';
  const ctx = {};
  const steps = [];
  const step = (name, fn, requires = []) => steps.push({ name, fn, requires });

  step('user signs up and logs in', async () => {
    QB.init(app.application_id, app.auth_key, app.auth_secret, app.account_key || '',
      { endpoints: { api, chat: 'localhost' }, debug: { mode: 0 }, timeout: 13000 });
    await ok('createSession()', (cb) => QB.createSession(cb));
    ctx.alice = await ok('users.create(alice)', (cb) => QB.users.create(alice, cb));
    await ok(`createSession(${alice.login})`, (cb) => QB.createSession(alice, cb));
  });

  step('content.createAndUpload uploads a public file', async () => {
    const blob = await ok('content.createAndUpload(public)', (cb) => QB.content.createAndUpload({
      name: 'hello.txt', file: Buffer.from(text), type: 'text/plain', size: Buffer.byteLength(text), public: true,
    }, cb));
    assert.match(blob.uid, /^[0-9a-f]{32}$/, fmt(blob));
    assert.equal(blob.size, Buffer.byteLength(text), fmt(blob));
    assert.match(blob.blob_object_access.params, new RegExp(`^https://${api.replace(/\./g, '\\.')}/blobs/upload\\?`), fmt(blob));
    ctx.public = blob;
  }, ['user signs up and logs in']);

  step('content.createAndUpload uploads a private file', async () => {
    const bytes = Buffer.from([0, 1, 2, 3, 250, 251, 252, 253, 254, 255]);
    const blob = await ok('content.createAndUpload(private)', (cb) => QB.content.createAndUpload({
      name: 'bytes.bin', file: bytes, type: 'application/octet-stream', size: bytes.length,
    }, cb));
    assert.equal(blob.public, false, fmt(blob));
    ctx.private = blob;
    ctx.privateBytes = bytes;
  }, ['user signs up and logs in']);

  step('content.getInfo and getFile describe the completed blob', async () => {
    const info = await ok('content.getInfo(id)', (cb) => QB.content.getInfo(ctx.public.id, cb));
    assert.equal(info.blob.uid, ctx.public.uid, fmt(info));
    assert.equal(info.blob.blob_status, 'complete', fmt(info));
    assert.equal(info.blob.size, Buffer.byteLength(text), fmt(info));
    const file = await ok('content.getFile(uid)', (cb) => QB.content.getFile(ctx.public.uid, cb));
    assert.equal(file.blob.id, ctx.public.id, fmt(file));
  }, ['content.createAndUpload uploads a public file']);

  step('publicUrl downloads the public file without a token', async () => {
    const url = QB.content.publicUrl(ctx.public.uid);
    const res = await fetchUrl(url);
    assert.equal(res.status, 200, `${url}: ${res.body}`);
    assert.equal(res.body.toString(), text);
    assert.equal(res.headers['content-type'], 'text/plain');
  }, ['content.createAndUpload uploads a public file']);

  step('privateUrl downloads the private file; without the token it is refused', async () => {
    const url = QB.content.privateUrl(ctx.private.uid);
    assert.match(url, /\?token=[0-9a-f]+$/);
    const res = await fetchUrl(url);
    assert.equal(res.status, 200, `${url}: ${res.body}`);
    assert.deepEqual([...res.body], [...ctx.privateBytes]);
    const anonymous = await fetchUrl(QB.content.publicUrl(ctx.private.uid));
    assert.equal(anonymous.status, 401, `anonymous download of a private file: ${anonymous.body}`);
  }, ['content.createAndUpload uploads a private file']);

  step('content.list and content.update', async () => {
    const page = await ok('content.list', (cb) => QB.content.list({ page: 1, per_page: 10 }, cb));
    assert.equal(page.total_entries, 2, fmt(page));
    assert.deepEqual(page.items.map((i) => i.blob.id).sort(), [ctx.public.id, ctx.private.id].sort(), fmt(page));
    const updated = await ok('content.update', (cb) => QB.content.update({ id: ctx.public.id, name: 'renamed.txt' }, cb));
    assert.equal(updated.blob.name, 'renamed.txt', fmt(updated));
  }, ['content.createAndUpload uploads a public file', 'content.createAndUpload uploads a private file']);

  step('content.delete removes the file', async () => {
    const { err } = await call('content.delete', (cb) => QB.content.delete(ctx.public.id, cb));
    assert.equal(err, null, `content.delete failed: ${fmt(err)}`);
    const res = await fetchUrl(QB.content.publicUrl(ctx.public.uid));
    assert.equal(res.status, 404, `download after delete: ${res.body}`);
    await fails('content.getInfo after delete', (cb) => QB.content.getInfo(ctx.public.id, cb), 404);
  }, ['publicUrl downloads the public file without a token', 'content.list and content.update']);

  return steps;
}

const run = (target, report) => runSteps(buildSteps(target), report);
module.exports = { run };

if (require.main === module) main(buildSteps);
