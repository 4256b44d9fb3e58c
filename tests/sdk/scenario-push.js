'use strict';
// Push notifications with the stock `quickblox` SDK: QB.pushnotifications.subscriptions.create/list/delete and
// events.create/list/get/delete. The test server has no FCM/APNs credentials, so the event is accepted and its
// delivery counted as failed (provider delivery is tested in control-api/tests/push.rs). Same step protocol and
// standalone use as scenario-users.js (run by push.test.js).

const assert = require('node:assert/strict');
const { runSteps, main, ok, call, fails, fmt } = require('./scenario-users');

function buildSteps(target) {
  const QB = require('quickblox');
  const { app, api } = target;
  const sfx = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  const alice = { login: `push_alice_${sfx}`, password: 'alicePass-1' };
  const bob = { login: `push_bob_${sfx}`, password: 'bobPass-2' };
  const ctx = {};
  const steps = [];
  const step = (name, fn, requires = []) => steps.push({ name, fn, requires });
  const as = (user) => ok(`createSession(${user.login})`, (cb) => QB.createSession(user, cb));

  step('users sign up and Bob logs in', async () => {
    QB.init(app.application_id, app.auth_key, app.auth_secret, app.account_key || '',
      { endpoints: { api, chat: 'localhost' }, debug: { mode: 0 }, timeout: 13000 });
    await ok('createSession()', (cb) => QB.createSession(cb));
    ctx.alice = await ok('users.create(alice)', (cb) => QB.users.create(alice, cb));
    ctx.bob = await ok('users.create(bob)', (cb) => QB.users.create(bob, cb));
    await as(bob);
  });

  step('subscriptions.create and list', async () => {
    const created = await ok('subscriptions.create', (cb) => QB.pushnotifications.subscriptions.create({
      notification_channel: 'gcm',
      device: { platform: 'android', udid: `udid-${sfx}` },
      push_token: { environment: 'development', client_identification_sequence: `token-${sfx}` },
    }, cb));
    assert.ok(Array.isArray(created), fmt(created));
    assert.equal(created[0].subscription.notification_channel.name, 'gcm', fmt(created));
    assert.equal(created[0].subscription.device.udid, `udid-${sfx}`, fmt(created));
    ctx.subscription = created[0].subscription.id;
    const list = await ok('subscriptions.list', (cb) => QB.pushnotifications.subscriptions.list(cb));
    assert.deepEqual(list.map((s) => s.subscription.id), [ctx.subscription], fmt(list));
  }, ['users sign up and Bob logs in']);

  step('events.create addresses Bob; list, get and delete it', async () => {
    await as(alice);
    const message = QB.pushnotifications.base64Encode(JSON.stringify({ message: 'hello Bob', ios_badge: 1 }));
    const res = await ok('events.create', (cb) => QB.pushnotifications.events.create({
      notification_type: 'push', environment: 'development', user: { ids: [ctx.bob.id] }, message,
    }, cb));
    const event = res.event;
    assert.equal(typeof event.id, 'number', fmt(res));
    assert.equal(event.message, message, fmt(res));
    assert.equal(event.sent + event.failed, 1, `one device was addressed: ${fmt(res)}`);
    const list = await ok('events.list', (cb) => QB.pushnotifications.events.list({ page: 1, per_page: 10 }, cb));
    assert.equal(list.total_entries, 1, fmt(list));
    const got = await ok('events.get', (cb) => QB.pushnotifications.events.get(event.id, cb));
    assert.equal(got.event.id, event.id, fmt(got));
    const { err } = await call('events.delete', (cb) => QB.pushnotifications.events.delete(event.id, cb));
    assert.equal(err, null, `events.delete: ${fmt(err)}`);
    await fails('events.get after delete', (cb) => QB.pushnotifications.events.get(event.id, cb), 404);
    await fails('events.create without recipients', (cb) => QB.pushnotifications.events.create({
      notification_type: 'push', environment: 'development', user: {}, message,
    }, cb), 422);
  }, ['subscriptions.create and list']);

  step('subscriptions.delete', async () => {
    await as(bob);
    const { err } = await call('subscriptions.delete', (cb) => QB.pushnotifications.subscriptions.delete(ctx.subscription, cb));
    assert.equal(err, null, `subscriptions.delete: ${fmt(err)}`);
    const list = await ok('subscriptions.list', (cb) => QB.pushnotifications.subscriptions.list(cb));
    assert.deepEqual(list, [], fmt(list));
  }, ['events.create addresses Bob; list, get and delete it']);

  return steps;
}

const run = (target, report) => runSteps(buildSteps(target), report);
module.exports = { run };

if (require.main === module) main(buildSteps);
