'use strict';
// Custom objects with the stock `quickblox` SDK: QB.data.create (typed fields, per-record permissions),
// QB.data.list with operators, sort, limit and count, QB.data.update, and QB.data.delete by id, by ids and by
// criteria. The class `Car` (model:string, year:integer, price:float, tags:string[]) is created by data.test.js
// with the CLI; the class `Profile` (with a file field) is created here by the owner over REST
// (`POST /class.json` with `Authorization: ApiKey <api_key from app create --json>`), then files go through
// QB.data.uploadFile, QB.data.fileUrl / downloadFile (fetched like an app would) and QB.data.deleteFile.
// Same step protocol and standalone use as scenario-users.js.

const assert = require('node:assert/strict');
const { runSteps, main, ok, fails, fmt } = require('./scenario-users');
// The SDK's own HTTP client under Node: it honours NODE_EXTRA_CA_CERTS like the SDK's requests do.
const fetch = require('node-fetch');

function buildSteps(target) {
  const QB = require('quickblox');
  const { app, api } = target;
  const sfx = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  const alice = { login: `data_alice_${sfx}`, password: 'alicePass-1' };
  const bob = { login: `data_bob_${sfx}`, password: 'bobPass-2' };
  const ctx = {};
  const steps = [];
  const step = (name, fn, requires = []) => steps.push({ name, fn, requires });
  const as = (user) => ok(`createSession(${user.login})`, (cb) => QB.createSession(user, cb));
  const models = (page) => page.items.map((r) => r.model);

  step('users sign up and Alice logs in', async () => {
    QB.init(app.application_id, app.auth_key, app.auth_secret, app.account_key || '',
      { endpoints: { api, chat: 'localhost' }, debug: { mode: 0 }, timeout: 13000 });
    await ok('createSession()', (cb) => QB.createSession(cb));
    ctx.alice = await ok('users.create(alice)', (cb) => QB.users.create(alice, cb));
    ctx.bob = await ok('users.create(bob)', (cb) => QB.users.create(bob, cb));
    await as(alice);
  });

  step('data.create stores typed records', async () => {
    const cars = [['civic', 2010, 5000.5, ['a', 'b']], ['golf', 2015, 9000, ['b']], ['model3', 2021, 40000, ['c']]];
    ctx.cars = [];
    for (const [model, year, price, tags] of cars) {
      const r = await ok(`data.create(${model})`, (cb) => QB.data.create('Car', { model, year, price, tags }, cb));
      assert.match(r._id, /^[0-9a-f]{24}$/, fmt(r));
      assert.equal(r.user_id, ctx.alice.id, fmt(r));
      assert.equal(r.year, year, fmt(r));
      assert.deepEqual(r.tags, tags, fmt(r));
      ctx.cars.push(r);
    }
    ctx.hidden = await ok('data.create(private)', (cb) => QB.data.create('Car',
      { model: 'hidden', year: 2000, permissions: { read: { access: 'owner' } } }, cb));
    await fails('data.create with a wrong type', (cb) => QB.data.create('Car', { year: 'old' }, cb), 422);
  }, ['users sign up and Alice logs in']);

  step('data.list filters, sorts, pages and counts', async () => {
    const recent = await ok('data.list(year gt)', (cb) => QB.data.list('Car', { year: { gt: 2012 }, sort_desc: 'year' }, cb));
    assert.equal(recent.class_name, 'Car');
    assert.deepEqual(models(recent), ['model3', 'golf'], fmt(recent));
    const some = await ok('data.list(in)', (cb) => QB.data.list('Car', { model: { in: ['civic', 'golf'] }, sort_asc: 'price', limit: 1, skip: 1 }, cb));
    assert.deepEqual(models(some), ['golf'], fmt(some));
    const tagged = await ok('data.list(all)', (cb) => QB.data.list('Car', { tags: { all: ['a', 'b'] } }, cb));
    assert.deepEqual(models(tagged), ['civic'], fmt(tagged));
    const count = await ok('data.list(count)', (cb) => QB.data.list('Car', { count: 1 }, cb));
    assert.equal(count.items_count, 4, fmt(count));
  }, ['data.create stores typed records']);

  step('Bob never sees the owner-only record', async () => {
    await as(bob);
    const all = await ok('data.list as Bob', (cb) => QB.data.list('Car', { sort_asc: 'year' }, cb));
    assert.deepEqual(models(all), ['civic', 'golf', 'model3'], fmt(all));
    await fails('data.update of Alice\'s record by Bob', (cb) =>
      QB.data.update('Car', { _id: ctx.cars[0]._id, price: 1 }, cb), 403);
    await as(alice);
  }, ['data.create stores typed records']);

  step('data.update changes fields', async () => {
    const r = await ok('data.update', (cb) => QB.data.update('Car', { _id: ctx.cars[0]._id, price: 4500, inc: { year: 1 } }, cb));
    assert.equal(r.price, 4500, fmt(r));
    assert.equal(r.year, 2011, fmt(r));
  }, ['data.create stores typed records']);

  step('data.delete by id, by ids and by criteria', async () => {
    const one = await ok('data.delete(id)', (cb) => QB.data.delete('Car', ctx.hidden._id, cb));
    assert.equal(one.deletedCount, 1, fmt(one));
    const many = await ok('data.delete(ids)', (cb) => QB.data.delete('Car', [ctx.cars[0]._id, ctx.cars[1]._id], cb));
    assert.deepEqual([...many.deleted].sort(), [ctx.cars[0]._id, ctx.cars[1]._id].sort(), fmt(many));
    const crit = await ok('data.delete(criteria)', (cb) => QB.data.delete('Car', { year: { gt: 2020 } }, cb));
    assert.equal(crit.deletedCount, 1, fmt(crit));
    const left = await ok('data.list', (cb) => QB.data.list('Car', cb));
    assert.deepEqual(left.items, [], fmt(left));
  }, ['data.update changes fields', 'data.list filters, sorts, pages and counts', 'Bob never sees the owner-only record']);

  const owner = (method, path, { key = app.api_key, token, body } = {}) => {
    const headers = { 'Content-Type': 'application/json' };
    if (key) headers.Authorization = `ApiKey ${key}`;
    if (token) headers['QB-Token'] = token;
    return fetch(`https://${api}${path}`, { method, headers, body: body && JSON.stringify(body) });
  };
  const avatar = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));

  step('the owner creates a class over REST with the API key', async () => {
    assert.ok(app.api_key, `app create --json gives the owner's api_key: ${fmt(app)}`);
    await as(alice);
    let r = await owner('POST', '/class.json', { body: { name: 'Profile', fields: { nick: 'String', avatar: 'File' } } });
    let body = await r.json();
    assert.equal(r.status, 201, fmt(body));
    assert.deepEqual(body.custom_fields, [{ name: 'avatar', type: 'File' }, { name: 'nick', type: 'String' }], fmt(body));
    r = await owner('GET', '/class/Profile.json', { key: null });
    assert.equal(r.status, 401, 'no key');
    r = await owner('GET', '/class/Profile.json', { key: null, token: QB.service.getSession().token });
    assert.equal(r.status, 403, 'a user session may not manage classes');
    r = await owner('GET', '/class/Profile.json', { key: 'wrong' });
    assert.equal(r.status, 401, 'a wrong key');
    r = await owner('GET', '/class.json');
    body = await r.json();
    assert.deepEqual(body.items.map((c) => c.name), ['Car', 'Profile'], fmt(body));
  }, ['users sign up and Alice logs in']);

  step('data.uploadFile, fileUrl, downloadFile and deleteFile', async () => {
    const rec = await ok('data.create(Profile)', (cb) => QB.data.create('Profile', { nick: 'ally' }, cb));
    const file = await ok('data.uploadFile', (cb) => QB.data.uploadFile('Profile',
      { id: rec._id, field_name: 'avatar', file: avatar, name: 'avatar.png' }, cb));
    assert.match(file.file_id, /^[0-9a-f]{24}$/, fmt(file));
    assert.equal(file.size, avatar.length, fmt(file));
    assert.equal(file.name, 'avatar.png', fmt(file));
    assert.equal(file.content_type, 'image/png', fmt(file));
    const listed = await ok('data.list(Profile)', (cb) => QB.data.list('Profile', { _id: rec._id }, cb));
    assert.deepEqual(listed.items[0].avatar, file, fmt(listed));

    let r = await fetch(QB.data.fileUrl('Profile', { id: rec._id, field_name: 'avatar' }));
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(r.headers.get('content-type'), 'image/png');
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(avatar), 'fileUrl serves the uploaded bytes');
    const url = await ok('data.downloadFile', (cb) => QB.data.downloadFile('Profile', { id: rec._id, field_name: 'avatar' }, cb));
    r = await fetch(url);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(avatar), 'downloadFile\'s URL serves them too');
    r = await fetch(url.replace(/token=[^&]*/, 'token=nope'));
    assert.equal(r.status, 401, 'an unknown token');

    await fails('data.uploadFile to a non-file field', (cb) => QB.data.uploadFile('Profile',
      { id: rec._id, field_name: 'nick', file: avatar, name: 'a.png' }, cb), 422);
    await as(bob);
    await fails('data.uploadFile by Bob (update: owner)', (cb) => QB.data.uploadFile('Profile',
      { id: rec._id, field_name: 'avatar', file: avatar, name: 'b.png' }, cb), 403);
    r = await fetch(QB.data.fileUrl('Profile', { id: rec._id, field_name: 'avatar' }));
    assert.equal(r.status, 200, 'Bob may read (read: open)');
    await as(alice);

    const gone = await ok('data.deleteFile', (cb) => QB.data.deleteFile('Profile', { id: rec._id, field_name: 'avatar' }, cb));
    assert.equal(gone, true);
    r = await fetch(QB.data.fileUrl('Profile', { id: rec._id, field_name: 'avatar' }));
    assert.equal(r.status, 404, 'the file is gone');
  }, ['the owner creates a class over REST with the API key']);

  step('deleting a record takes its descendants and their files', async () => {
    const top = await ok('data.create(top)', (cb) => QB.data.create('Profile', { nick: 'top' }, cb));
    const mid = await ok('data.create(child)', (cb) => QB.data.create('Profile', { nick: 'mid', _parent_id: top._id }, cb));
    const leaf = await ok('data.create(grandchild)', (cb) => QB.data.create('Profile', { nick: 'leaf', _parent_id: mid._id }, cb));
    await ok('data.uploadFile(grandchild)', (cb) => QB.data.uploadFile('Profile',
      { id: leaf._id, field_name: 'avatar', file: avatar, name: 'leaf.png' }, cb));
    const url = QB.data.fileUrl('Profile', { id: leaf._id, field_name: 'avatar' });
    assert.equal((await fetch(url)).status, 200);
    await ok('data.delete(top)', (cb) => QB.data.delete('Profile', top._id, cb));
    const left = await ok('data.list(Profile)', (cb) => QB.data.list('Profile', { _id: { in: [top._id, mid._id, leaf._id] } }, cb));
    assert.deepEqual(left.items, [], fmt(left));
    assert.equal((await fetch(url)).status, 404, 'the grandchild\'s file went with it');
  }, ['data.uploadFile, fileUrl, downloadFile and deleteFile']);

  return steps;
}

const run = (target, report) => runSteps(buildSteps(target), report);
module.exports = { run };

if (require.main === module) main(buildSteps);
