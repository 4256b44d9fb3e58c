'use strict';
// Chat with the stock `quickblox` SDK under Node over our XMPP WebSocket (/ws) and REST.
// One process per user (the SDK is a singleton). ROLE=setup signs both users up and prints their ids;
// ROLE=bob waits for Alice's message, marks it read, types, and answers; ROLE=alice sends, waits for the
// answer, checks the read marker reached REST (read_ids), then chats in a group dialog.
// Every line this script reports is `@@SB {json}` on stdout; SWITCHBOARD_SDK_TARGET carries
// {"api","ws","app","users"?}.

const assert = require('node:assert/strict');

const target = JSON.parse(process.env.SWITCHBOARD_SDK_TARGET || '{}');
const role = process.env.ROLE;
const report = (m) => process.stdout.write('@@SB ' + JSON.stringify(m) + '\n');
const fail = (e) => {
  report({ error: (e && e.stack) || String(e) });
  process.stdout.write('', () => process.exit(1));
};
setTimeout(() => fail(new Error(`${role}: scenario timed out`)), Number(process.env.SWITCHBOARD_SCENARIO_TIMEOUT_MS || 60000));

const QB = require('quickblox');
QB.init(target.app.application_id, target.app.auth_key, target.app.auth_secret, target.app.account_key, {
  endpoints: { api: target.api, chat: 'localhost' },
  chatProtocol: { active: 2, websocket: target.ws },
  debug: { mode: 0 },
});
QB.chat.Client.options.websocket = { url: target.ws };

// The SDK reports transport failures as success with no result: treat a missing result as an error.
const call = (what, fn) => new Promise((resolve, reject) => fn((err, res) => {
  if (err) reject(new Error(`${what}: ${JSON.stringify(err)}`));
  else if (res === undefined) reject(new Error(`${what}: no result (transport failure?)`));
  else resolve(res);
}));
const login = (user) => call('createSession', (cb) => QB.createSession({ login: user.login, password: user.password }, cb));
const connect = (session) => new Promise((resolve, reject) =>
  QB.chat.connect({ userId: session.user_id, password: session.token }, (err) => (err ? reject(new Error(`chat.connect: ${JSON.stringify(err)}`)) : resolve())));
const nextMessage = () => new Promise((resolve) => { QB.chat.onMessageListener = (userId, msg) => resolve({ userId, msg }); });

const USERS = {
  alice: { login: `chat_alice_${process.pid}_${Date.now()}`, password: 'alicePass-1' },
  bob: { login: `chat_bob_${process.pid}_${Date.now()}`, password: 'bobPass-22' },
};

async function setup() {
  await call('createSession(app)', (cb) => QB.createSession(cb));
  const ids = {};
  for (const [name, u] of Object.entries(USERS)) {
    const user = await call(`users.create(${name})`, (cb) => QB.users.create(u, cb));
    ids[name] = { id: user.id, ...u };
  }
  report({ users: ids });
}

async function bob() {
  const { bob: me, alice } = target.users;
  const session = await login(me);
  await connect(session);
  const incoming = nextMessage();
  report({ ready: true });
  const { userId, msg } = await incoming;
  assert.equal(userId, alice.id, 'sender id from the JID');
  assert.equal(msg.body, 'hello bob');
  assert.equal(msg.extension.custom, 'kept', 'custom extraParams survive');
  assert.ok(msg.dialog_id, 'the server adds dialog_id');
  QB.chat.sendReadStatus({ messageId: msg.id, userId: alice.id, dialogId: msg.dialog_id });
  QB.chat.sendIsTypingStatus(alice.id);
  QB.chat.send(alice.id, { type: 'chat', body: 'hi alice', extension: { save_to_history: 1, dialog_id: msg.dialog_id } });
  report({ step: 'bob read, typed and answered', id: msg.id });
  // Alice then invites Bob into a group dialog with a system notification (a headline).
  const invite = await new Promise((resolve) => { QB.chat.onSystemMessageListener = resolve; });
  assert.equal(invite.userId, alice.id);
  const groupId = invite.extension.group_id;
  assert.ok(groupId, `the system message carries its extension: ${JSON.stringify(invite)}`);
  await call('chat.muc.join (bob)', (cb) => QB.chat.muc.join(groupId, cb));
  QB.chat.send(QB.chat.helpers.getRoomJidFromDialogId(groupId), { type: 'groupchat', body: 'bob here', extension: { save_to_history: 1 } });
  report({ step: 'bob joined the group from a system notification and spoke' });
  // Stay connected until the test ends this process.
}

async function alice() {
  const { alice: me, bob: peer } = target.users;
  const session = await login(me);
  const dialog = await call('chat.dialog.create(private)', (cb) => QB.chat.dialog.create({ type: 3, occupants_ids: [peer.id] }, cb));
  await connect(session);
  let typing = false;
  QB.chat.onMessageTypingListener = (isTyping, userId) => { if (isTyping && userId === peer.id) typing = true; };
  const read = new Promise((resolve) => { QB.chat.onReadStatusListener = (messageId) => resolve(messageId); });
  const answer = nextMessage();
  const sentId = QB.chat.send(peer.id, { type: 'chat', body: 'hello bob', markable: 1,
    extension: { save_to_history: 1, dialog_id: dialog._id, custom: 'kept' } });
  assert.equal(await read, sentId, 'read marker names the message id we sent');
  const { msg } = await answer;
  const answerId = msg.id;
  assert.equal(msg.body, 'hi alice');
  assert.ok(typing, 'typing notification arrived before the answer');
  report({ step: 'private message round trip with read marker and typing' });

  const page = await call('chat.message.list', (cb) => QB.chat.message.list({ chat_dialog_id: dialog._id, sort_asc: 'date_sent', mark_as_read: 0 }, cb));
  const stored = page.items.find((m) => m._id === sentId);
  assert.ok(stored, `the XMPP message is in REST history: ${JSON.stringify(page.items)}`);
  assert.ok(stored.read_ids.includes(peer.id), `read marker reached REST: ${JSON.stringify(stored)}`);
  const unread = await call('chat.message.unreadCount', (cb) => QB.chat.message.unreadCount({ chat_dialog_ids: [dialog._id] }, cb));
  assert.equal(unread.total, 1, `Bob's answer is unread for Alice: ${JSON.stringify(unread)}`);
  await call('chat.message.update(read)', (cb) => QB.chat.message.update(answerId, { chat_dialog_id: dialog._id, read: 1 }, cb));
  const after = await call('chat.message.unreadCount', (cb) => QB.chat.message.unreadCount({ chat_dialog_ids: [dialog._id] }, cb));
  assert.equal(after.total, 0, `unread count after marking read: ${JSON.stringify(after)}`);
  report({ step: 'REST sees history, read_ids and unread counts' });

  const group = await call('chat.dialog.create(group)', (cb) => QB.chat.dialog.create({ type: 2, name: 'team', occupants_ids: [peer.id] }, cb));
  await call('chat.muc.join', (cb) => QB.chat.muc.join(group._id, cb));
  const reflected = nextMessage();
  QB.chat.send(group.xmpp_room_jid, { type: 'groupchat', body: 'hello team', extension: { save_to_history: 1 } });
  const got = await reflected;
  assert.equal(got.msg.body, 'hello team');
  assert.equal(got.msg.dialog_id, group._id);
  assert.equal(got.userId, me.id);
  report({ step: 'group dialog created over REST, joined and chatted in over XMPP' });

  // Invite Bob with a system notification; his join (a room presence) and message reach us.
  const fromBob = new Promise((resolve) => {
    QB.chat.onMessageListener = (userId, m) => { if (userId === peer.id && m.type === 'groupchat') resolve(m); };
  });
  QB.chat.sendSystemMessage(peer.id, { extension: { group_id: group._id } });
  const bobSaid = await fromBob;
  assert.equal(bobSaid.body, 'bob here');
  assert.equal(bobSaid.dialog_id, group._id);
  report({ step: 'system notification delivered; a second SDK client joined the room and was heard' });
  report({ done: true });
  process.stdout.write('', () => process.exit(0));
}

({ setup, bob, alice })[role]().then(() => { if (role === 'setup') process.stdout.write('', () => process.exit(0)); }, fail);
