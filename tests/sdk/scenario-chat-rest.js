'use strict';
// Chat over REST with the stock `quickblox` SDK: QB.chat.dialog.create/list/update and
// QB.chat.message.create/list/update(read)/delete/unreadCount, as Alice and then Bob (one SDK session
// at a time). Same step protocol and standalone use as scenario-users.js (run by chat-rest.test.js).

const assert = require('node:assert/strict');
const { runSteps, main, call, ok, fails, fmt } = require('./scenario-users');

function buildSteps(target) {
  const QB = require('quickblox');
  const { app, api } = target;
  const sfx = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  const alice = { login: `chat_alice_${sfx}`, password: 'alicePass-1' };
  const bob = { login: `chat_bob_${sfx}`, password: 'bobPass-2' };
  const ctx = {};
  const steps = [];
  const step = (name, fn, requires = []) => steps.push({ name, fn, requires });
  const as = (user) => ok(`createSession(${user.login})`, (cb) => QB.createSession(user, cb));
  // Text endpoints (DELETE, message.update) hand back the raw body.
  const parsed = (res) => (typeof res === 'string' && res.trim() ? JSON.parse(res) : res);

  step('users sign up and Alice logs in', async () => {
    QB.init(app.application_id, app.auth_key, app.auth_secret, app.account_key || '',
      { endpoints: { api, chat: 'localhost' }, debug: { mode: 0 }, timeout: 13000 });
    await ok('createSession()', (cb) => QB.createSession(cb));
    ctx.alice = await ok('users.create(alice)', (cb) => QB.users.create(alice, cb));
    ctx.bob = await ok('users.create(bob)', (cb) => QB.users.create(bob, cb));
    const s = await as(alice);
    assert.equal(s.user_id, ctx.alice.id, `Alice's session: ${fmt(s)}`);
  });

  step('dialog.create makes a group dialog with both occupants', async () => {
    const d = await ok('dialog.create(group)', (cb) =>
      QB.chat.dialog.create({ type: 2, name: 'Team', occupants_ids: [ctx.bob.id], data: { class_name: 'Info', topic: 'x' } }, cb));
    assert.match(d._id, /^[0-9a-f]{24}$/, `dialog _id: ${fmt(d)}`);
    assert.equal(d.type, 2);
    assert.deepEqual([...d.occupants_ids].sort((a, b) => a - b), [ctx.alice.id, ctx.bob.id].sort((a, b) => a - b));
    assert.equal(d.xmpp_room_jid, `${app.application_id}_${d._id}@muc.localhost`);
    assert.deepEqual(d.data, { class_name: 'Info', topic: 'x' });
    ctx.group = d._id;
  }, ['users sign up and Alice logs in']);

  step('dialog.create of a private pair twice gives one dialog', async () => {
    const p = await ok('dialog.create(private)', (cb) => QB.chat.dialog.create({ type: 3, occupants_ids: [ctx.bob.id] }, cb));
    assert.equal(p.type, 3);
    assert.equal(p.xmpp_room_jid, null);
    const again = await ok('dialog.create(private again)', (cb) => QB.chat.dialog.create({ type: 3, occupants_ids: [ctx.bob.id] }, cb));
    assert.equal(again._id, p._id);
    ctx.private = p._id;
  }, ['users sign up and Alice logs in']);

  step('dialog.list filters by type and counts', async () => {
    const all = await ok('dialog.list()', (cb) => QB.chat.dialog.list({ sort_desc: 'created_at' }, cb));
    assert.equal(all.total_entries, 2, fmt(all));
    const groups = await ok('dialog.list(type 2)', (cb) => QB.chat.dialog.list({ type: { in: [2] } }, cb));
    assert.deepEqual(groups.items.map((d) => d._id), [ctx.group], fmt(groups));
    const count = await ok('dialog.list(count)', (cb) => QB.chat.dialog.list({ count: 1 }, cb));
    assert.equal(count.items_count, 2, fmt(count));
  }, ['dialog.create makes a group dialog with both occupants', 'dialog.create of a private pair twice gives one dialog']);

  step('dialog.update renames the group', async () => {
    const d = await ok('dialog.update', (cb) => QB.chat.dialog.update(ctx.group, { name: 'Renamed', photo: 'p.png' }, cb));
    assert.equal(d.name, 'Renamed', fmt(d));
    assert.equal(d.photo, 'p.png', fmt(d));
  }, ['dialog.create makes a group dialog with both occupants']);

  step('message.create stores a message with attachments and custom parameters', async () => {
    const m = await ok('message.create', (cb) => QB.chat.message.create({
      chat_dialog_id: ctx.group, message: 'hello team', markable: 1,
      attachments: [{ id: 'blob1', type: 'image' }], color: 'red',
    }, cb));
    assert.match(m._id, /^[0-9a-f]{24}$/, fmt(m));
    assert.equal(m.sender_id, ctx.alice.id);
    assert.equal(m.message, 'hello team');
    assert.deepEqual(m.attachments, [{ id: 'blob1', type: 'image' }]);
    assert.equal(m.color, 'red');
    assert.deepEqual(m.read_ids, [ctx.alice.id]);
    ctx.message = m._id;
    ctx.second = (await ok('message.create(2)', (cb) =>
      QB.chat.message.create({ chat_dialog_id: ctx.group, message: 'second' }, cb)))._id;
  }, ['dialog.create makes a group dialog with both occupants']);

  step('message.list returns the history, newest first', async () => {
    const page = await ok('message.list', (cb) => QB.chat.message.list(
      { chat_dialog_id: ctx.group, sort_desc: 'date_sent', limit: 10, mark_as_read: 0 }, cb));
    const ids = page.items.map((m) => m._id);
    assert.deepEqual([...ids].sort(), [ctx.message, ctx.second].sort(), fmt(page));
    assert.equal(page.limit, 10);
  }, ['message.create stores a message with attachments and custom parameters']);

  step('Bob sees two unread messages', async () => {
    await as(bob);
    const counts = await ok('message.unreadCount', (cb) => QB.chat.message.unreadCount({ chat_dialog_ids: [ctx.group] }, cb));
    assert.equal(counts.total, 2, fmt(counts));
    assert.equal(counts[ctx.group], 2, fmt(counts));
    const list = await ok('dialog.list as Bob', (cb) => QB.chat.dialog.list({ type: 2 }, cb));
    assert.equal(list.items[0].unread_messages_count, 2, fmt(list));
    assert.equal(list.items[0].last_message, 'second', fmt(list));
  }, ['message.create stores a message with attachments and custom parameters']);

  step('message.update(read) marks a message read', async () => {
    const { err } = await call('message.update(read)', (cb) =>
      QB.chat.message.update(ctx.message, { chat_dialog_id: ctx.group, read: 1 }, cb));
    assert.equal(err, null, `message.update failed: ${fmt(err)}`);
    const counts = await ok('message.unreadCount', (cb) => QB.chat.message.unreadCount({ chat_dialog_ids: [ctx.group] }, cb));
    assert.equal(counts.total, 1, fmt(counts));
    const page = await ok('message.list', (cb) => QB.chat.message.list({ chat_dialog_id: ctx.group, mark_as_read: 0 }, cb));
    const first = page.items.find((m) => m._id === ctx.message);
    assert.deepEqual([...first.read_ids].sort((a, b) => a - b), [ctx.alice.id, ctx.bob.id].sort((a, b) => a - b), fmt(first));
  }, ['Bob sees two unread messages']);

  step('Bob cannot delete Alice\'s message for everyone, but for himself', async () => {
    await fails('message.delete(force, not sender)', (cb) => QB.chat.message.delete(ctx.second, { force: 1 }, cb), 403);
    const { err, res } = await call('message.delete', (cb) => QB.chat.message.delete(ctx.second, cb));
    assert.equal(err, null, `message.delete failed: ${fmt(err)}`);
    assert.deepEqual(parsed(res), { SuccessfullyDeleted: { ids: [ctx.second] }, NotFound: { ids: [] } });
    const page = await ok('message.list', (cb) => QB.chat.message.list({ chat_dialog_id: ctx.group }, cb));
    assert.deepEqual(page.items.map((m) => m._id), [ctx.message], fmt(page));
    const counts = await ok('message.unreadCount', (cb) => QB.chat.message.unreadCount({ chat_dialog_ids: [ctx.group] }, cb));
    assert.equal(counts.total, 0, fmt(counts));
  }, ['message.update(read) marks a message read']);

  step('Alice deletes her message for everyone', async () => {
    await as(alice);
    const { err, res } = await call('message.delete(force)', (cb) => QB.chat.message.delete(ctx.message, { force: 1 }, cb));
    assert.equal(err, null, `message.delete(force) failed: ${fmt(err)}`);
    assert.deepEqual(parsed(res).SuccessfullyDeleted, { ids: [ctx.message] });
    await as(bob);
    const page = await ok('message.list as Bob', (cb) => QB.chat.message.list({ chat_dialog_id: ctx.group }, cb));
    assert.deepEqual(page.items, [], fmt(page));
  }, ['Bob cannot delete Alice\'s message for everyone, but for himself']);

  step('a non-occupant gets 404 for the dialog\'s messages', async () => {
    const carol = { login: `chat_carol_${sfx}`, password: 'carolPass-3' };
    await ok('users.create(carol)', (cb) => QB.users.create(carol, cb));
    await as(carol);
    await fails('message.list as a stranger', (cb) => QB.chat.message.list({ chat_dialog_id: ctx.group }, cb), 404);
    await fails('message.create as a stranger', (cb) =>
      QB.chat.message.create({ chat_dialog_id: ctx.group, message: 'let me in' }, cb), 404);
  }, ['dialog.create makes a group dialog with both occupants']);

  return steps;
}

const run = (target, report) => runSteps(buildSteps(target), report);
module.exports = { run };

if (require.main === module) main(buildSteps);
