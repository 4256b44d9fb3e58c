'use strict';
// Users/auth scenario with the stock, unmodified `quickblox` SDK against a running Switchboard.
//
// Normally started by users.test.js in a child process, because the SDK's REST calls are https:// and
// Node only reads NODE_EXTRA_CA_CERTS at startup. Standalone:
//   NODE_EXTRA_CA_CERTS=<data-dir>/tls/cert.pem \
//   SWITCHBOARD_SDK_TARGET='{"api":"127.0.0.1:8443","app":{"application_id":1,"auth_key":"…","auth_secret":"…","account_key":"…"}}' \
//   node tests/sdk/scenario-users.js
//
// Output protocol (stdout, one JSON object per line, prefixed "@@SB "; other lines are SDK noise):
//   {"plan":[step names]}  then per step {"step":name,"status":"pass"|"fail"|"skip","ms":n,"error":msg}
//   then {"done":true,"passed":n,"failed":n,"skipped":n}. Exit code 0 iff no step failed.

const assert = require('node:assert/strict');

const CALL_TIMEOUT_MS = 15000;

function fmt(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

// Wraps an SDK call `fn(cb)` into a promise of { err, res }, with a timeout.
function call(what, fn) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no callback within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
    try {
      fn((err, res) => {
        clearTimeout(timer);
        resolve({ err, res });
      });
    } catch (e) {
      clearTimeout(timer);
      reject(new Error(`${what} threw: ${e && e.stack || e}`));
    }
  });
}

let apiHost = null; // set by buildSteps; used to explain transport failures

// What a plain https request to the API host runs into (the SDK swallows the reason).
function probe() {
  return new Promise((resolve) => {
    if (!apiHost) return resolve('(no API host)');
    const req = require('node:https').get(`https://${apiHost}/session.json`, (r) => {
      r.resume();
      resolve(`a plain https GET /session.json got HTTP ${r.statusCode}, so the transport works`);
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout after 5 s')));
    req.on('error', (e) => resolve(`a plain https GET /session.json fails: ${e.code || ''} ${e.message}`));
  });
}

function noResult(res) {
  return res === undefined || res === null || res === ' ' || res === 'empty body';
}

// The SDK reports transport failures (connection refused, untrusted TLS, timeouts) as success with an
// undefined/' ' result, and a non-JSON body as an error without a code. So check both err and res.
async function ok(what, fn) {
  const { err, res } = await call(what, fn);
  if (err) {
    const hint = err.code === undefined ? ' (no HTTP code: the response body was probably not JSON)' : '';
    throw new Error(`${what} failed${hint}: error ${fmt(err)}`);
  }
  if (noResult(res)) {
    throw new Error(`${what} returned no result (${fmt(res)}): the SDK reports a transport failure ` +
      `(connection refused, TLS certificate not trusted, request timeout) this way; ${await probe()}`);
  }
  return res;
}

async function fails(what, fn, expectedCode) {
  const { err, res } = await call(what, fn);
  if (!err && noResult(res)) {
    throw new Error(`${what} should have failed with HTTP ${expectedCode} but got no result (${fmt(res)}), ` +
      `i.e. a transport failure; ${await probe()}`);
  }
  if (!err) throw new Error(`${what} should have failed with HTTP ${expectedCode} but succeeded with ${fmt(res)}`);
  if (expectedCode !== undefined) {
    const codes = Array.isArray(expectedCode) ? expectedCode : [expectedCode];
    assert.ok(codes.includes(err.code), `${what}: expected HTTP ${codes.join(' or ')}, got error ${fmt(err)}`);
  }
  return err;
}

function tagsOf(user) {
  return String(user.user_tags || '').split(',').map((t) => t.trim()).filter(Boolean);
}

function idsOf(page) {
  assert.ok(page && Array.isArray(page.items), `expected a paged list {current_page,per_page,total_entries,items:[{user}]}, got ${fmt(page)}`);
  return page.items.map((it) => {
    assert.ok(it && it.user && typeof it.user.id === 'number', `list item is not {"user":{"id":<number>,…}}: ${fmt(it)}`);
    return it.user.id;
  });
}

function checkUser(user, expect, what) {
  assert.ok(user && typeof user === 'object', `${what}: no user object, got ${fmt(user)}`);
  assert.equal(typeof user.id, 'number', `${what}: user.id must be a number: ${fmt(user)}`);
  for (const [k, v] of Object.entries(expect)) {
    assert.equal(user[k], v, `${what}: user.${k} should be ${fmt(v)}: ${fmt(user)}`);
  }
  for (const k of ['password', 'old_password', 'password_hash', 'encrypted_password']) {
    assert.ok(!(k in user), `${what}: user object must not expose "${k}": ${fmt(user)}`);
  }
}

function buildSteps(target) {
  const QB = require('quickblox');
  const { app, api } = target;
  apiHost = api;
  const sfx = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  const commonTag = `sbtest${sfx}`;
  const config = { endpoints: { api, chat: 'localhost' }, debug: { mode: 0 }, timeout: CALL_TIMEOUT_MS - 2000 };
  const u1 = {
    login: `alice_${sfx}`, password: 'alicePass-1', email: `alice_${sfx}@example.com`,
    full_name: 'Alice Liddell', tag_list: `${commonTag},alice`,
  };
  const u2 = {
    login: `bob_${sfx}`, password: 'bobPass-2', email: `bob_${sfx}@example.com`,
    full_name: 'Bob Builder', tag_list: [commonTag, 'bob'], // array form: the SDK sends user[tag_list]=a,b
  };
  const ctx = {};

  function init(secret) {
    QB.init(app.application_id, app.auth_key, secret, app.account_key || '', config);
  }

  const steps = [];
  const step = (name, fn, requires = []) => steps.push({ name, fn, requires });

  step('QB.init with local endpoints', async () => {
    init(app.auth_secret);
    assert.equal(QB.service.qbInst.config.endpoints.api, api);
    assert.ok(QB.users && QB.auth, 'QB.users / QB.auth missing after init');
  });

  step('createSession() gives an application session', async () => {
    const s = await ok('QB.createSession()', (cb) => QB.createSession(cb));
    assert.equal(typeof s.token, 'string', `session.token must be a string: ${fmt(s)}`);
    assert.ok(s.token.length > 0, `empty session.token: ${fmt(s)}`);
    assert.equal(Number(s.application_id), Number(app.application_id), `session.application_id: ${fmt(s)}`);
    assert.equal(s.user_id, 0, `an application session has user_id 0: ${fmt(s)}`);
    const exp = QB.service.qbInst.config.qbTokenExpirationDate;
    assert.ok(exp instanceof Date && !isNaN(exp) && exp > Date.now(),
      `QB-Token-ExpirationDate must be "YYYY-MM-DD HH:MM:SS UTC" in the future; SDK parsed it as ${exp}`);
    ctx.appToken = s.token;
  }, ['QB.init with local endpoints']);

  step('users.create creates user 1 (tag_list as string)', async () => {
    const u = await ok('QB.users.create(user 1)', (cb) => QB.users.create(u1, cb));
    checkUser(u, { login: u1.login, email: u1.email, full_name: u1.full_name }, 'created user 1');
    assert.deepEqual(tagsOf(u).sort(), [commonTag, 'alice'].sort(), `user 1 user_tags: ${fmt(u)}`);
    ctx.u1 = u;
  }, ['createSession() gives an application session']);

  step('users.create creates user 2 (tag_list as array)', async () => {
    const u = await ok('QB.users.create(user 2)', (cb) => QB.users.create(u2, cb));
    checkUser(u, { login: u2.login, email: u2.email, full_name: u2.full_name }, 'created user 2');
    assert.deepEqual(tagsOf(u).sort(), [commonTag, 'bob'].sort(), `user 2 user_tags: ${fmt(u)}`);
    assert.notEqual(u.id, ctx.u1 && ctx.u1.id, 'both users got the same id');
    ctx.u2 = u;
  }, ['createSession() gives an application session']);

  step('users.create with a taken login fails with 422', async () => {
    await fails('QB.users.create(duplicate login)', (cb) => QB.users.create(
      { login: u1.login, password: 'otherPass-9', email: `dup_${sfx}@example.com` }, cb), 422);
  }, ['users.create creates user 1 (tag_list as string)']);

  step('createSession({login,password}) gives a user session for user 1', async () => {
    const s = await ok('QB.createSession(user 1)', (cb) => QB.createSession({ login: u1.login, password: u1.password }, cb));
    assert.equal(s.user_id, ctx.u1.id, `session.user_id should be user 1's id: ${fmt(s)}`);
    assert.ok(s.token && s.token !== ctx.appToken, `a new token is expected: ${fmt(s)}`);
  }, ['users.create creates user 1 (tag_list as string)']);

  step('users.get(id) returns user 2', async () => {
    const u = await ok('QB.users.get(id)', (cb) => QB.users.get(ctx.u2.id, cb));
    checkUser(u, { id: ctx.u2.id, login: u2.login, full_name: u2.full_name }, 'users.get(id)');
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.get({login}) returns user 2', async () => {
    const u = await ok('QB.users.get({login})', (cb) => QB.users.get({ login: u2.login }, cb));
    checkUser(u, { id: ctx.u2.id, login: u2.login }, 'users.get({login})');
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.get({email}) returns user 1', async () => {
    const u = await ok('QB.users.get({email})', (cb) => QB.users.get({ email: u1.email }, cb));
    checkUser(u, { id: ctx.u1.id, email: u1.email }, 'users.get({email})');
  }, ['createSession({login,password}) gives a user session for user 1']);

  step('users.get({tags}) returns both users', async () => {
    const page = await ok('QB.users.get({tags})', (cb) => QB.users.get({ tags: commonTag }, cb));
    const ids = idsOf(page);
    assert.deepEqual([...ids].sort((a, b) => a - b), [ctx.u1.id, ctx.u2.id].sort((a, b) => a - b),
      `users with tag ${commonTag}: ${fmt(page)}`);
    assert.equal(page.total_entries, 2, `total_entries: ${fmt(page)}`);
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.listUsers with filter "id in" returns both users', async () => {
    const page = await ok('QB.users.listUsers(filter id in)', (cb) => QB.users.listUsers({
      filter: { field: 'id', param: 'in', value: [ctx.u1.id, ctx.u2.id] }, // wire: filter[]=number id in 1,2
      order: { sort: 'asc', field: 'id' }, // wire: order=asc string id (SDK type-detection bug)
      per_page: 10,
    }, cb));
    const ids = idsOf(page);
    assert.deepEqual(ids, [ctx.u1.id, ctx.u2.id].sort((a, b) => a - b), `ids, ascending: ${fmt(page)}`);
    assert.equal(page.total_entries, 2, `total_entries: ${fmt(page)}`);
    assert.equal(page.per_page, 10, `per_page: ${fmt(page)}`);
    assert.equal(page.current_page, 1, `current_page: ${fmt(page)}`);
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.listUsers with two filters (the SDK joins them into one filter[] value)', async () => {
    const page = await ok('QB.users.listUsers(two filters)', (cb) => QB.users.listUsers({
      // wire: filter[]=number id in 1,2,string login eq bob_… (one value; PROTOCOLS §4)
      filter: [
        { field: 'id', param: 'in', value: [ctx.u1.id, ctx.u2.id] },
        { field: 'login', param: 'eq', value: u2.login },
      ],
    }, cb));
    assert.deepEqual(idsOf(page), [ctx.u2.id], `only user 2 matches both filters: ${fmt(page)}`);
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.get({full_name}) finds user 2', async () => {
    const page = await ok('QB.users.get({full_name})', (cb) => QB.users.get({ full_name: u2.full_name }, cb));
    assert.ok(idsOf(page).includes(ctx.u2.id), `users named ${fmt(u2.full_name)}: ${fmt(page)}`);
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.listUsers paginates (per_page 1, page 2)', async () => {
    const page = await ok('QB.users.listUsers(page 2)', (cb) => QB.users.listUsers({
      filter: { field: 'id', param: 'in', value: [ctx.u1.id, ctx.u2.id] },
      order: { sort: 'desc', field: 'id' }, page: 2, per_page: 1,
    }, cb));
    const ids = idsOf(page);
    assert.deepEqual(ids, [Math.min(ctx.u1.id, ctx.u2.id)], `page 2 of 1, ids descending: ${fmt(page)}`);
    assert.equal(page.total_entries, 2, `total_entries: ${fmt(page)}`);
    assert.equal(page.current_page, 2, `current_page: ${fmt(page)}`);
    assert.equal(page.per_page, 1, `per_page: ${fmt(page)}`);
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('users.update(own id) changes full_name and tags', async () => {
    const u = await ok('QB.users.update(own)', (cb) =>
      QB.users.update(ctx.u1.id, { full_name: 'Alice Updated', tag_list: `${commonTag},updated` }, cb));
    checkUser(u, { id: ctx.u1.id, full_name: 'Alice Updated' }, 'users.update result');
    assert.deepEqual(tagsOf(u).sort(), [commonTag, 'updated'].sort(), `updated user_tags: ${fmt(u)}`);
  }, ['createSession({login,password}) gives a user session for user 1']);

  step('users.get(id) shows the update', async () => {
    const u = await ok('QB.users.get(own id)', (cb) => QB.users.get(ctx.u1.id, cb));
    checkUser(u, { id: ctx.u1.id, full_name: 'Alice Updated', login: u1.login }, 'users.get after update');
    assert.deepEqual(tagsOf(u).sort(), [commonTag, 'updated'].sort(), `user_tags after update: ${fmt(u)}`);
    const byTag = await ok('QB.users.get({tags:updated})', (cb) => QB.users.get({ tags: 'updated' }, cb));
    assert.deepEqual(idsOf(byTag), [ctx.u1.id], `users tagged "updated": ${fmt(byTag)}`);
  }, ['users.update(own id) changes full_name and tags']);

  step("users.update of another user's profile is refused", async () => {
    const err = await fails('QB.users.update(other user)', (cb) =>
      QB.users.update(ctx.u2.id, { full_name: 'Hacked' }, cb));
    assert.ok(err.code >= 400 && err.code < 500, `expected a 4xx (QuickBlox: 403), got ${fmt(err)}`);
    const u = await ok('QB.users.get(user 2)', (cb) => QB.users.get(ctx.u2.id, cb));
    assert.equal(u.full_name, u2.full_name, `user 2 must be unchanged: ${fmt(u)}`);
  }, ['createSession({login,password}) gives a user session for user 1', 'users.create creates user 2 (tag_list as array)']);

  step('password change needs old_password', async () => {
    const err = await fails('QB.users.update(password without old_password)', (cb) =>
      QB.users.update(ctx.u1.id, { password: 'newPass-1b' }, cb));
    assert.ok(err.code >= 400 && err.code < 500, `expected a 4xx (QuickBlox: 422), got ${fmt(err)}`);
    await ok('QB.users.update(password with old_password)', (cb) =>
      QB.users.update(ctx.u1.id, { old_password: u1.password, password: 'newPass-1c' }, cb));
    const s = await ok('QB.createSession(user 1, new password)', (cb) =>
      QB.createSession({ login: u1.login, password: 'newPass-1c' }, cb));
    assert.equal(s.user_id, ctx.u1.id, `session for the new password: ${fmt(s)}`);
    await fails('QB.createSession(user 1, old password)', (cb) =>
      QB.createSession({ login: u1.login, password: u1.password }, cb), 401);
  }, ['createSession({login,password}) gives a user session for user 1']);

  step('createSession with a wrong password fails with 401', async () => {
    const err = await fails('QB.createSession(wrong password)', (cb) =>
      QB.createSession({ login: u2.login, password: 'definitely-wrong' }, cb), 401);
    assert.deepEqual(err.message, { errors: ['Unauthorized'] }, `401 body: ${fmt(err)}`);
  }, ['users.create creates user 2 (tag_list as array)']);

  step('createSession + QB.login upgrades to a user session', async () => {
    await ok('QB.createSession()', (cb) => QB.createSession(cb));
    const u = await ok('QB.login(user 2)', (cb) => QB.login({ login: u2.login, password: u2.password }, cb));
    checkUser(u, { id: ctx.u2.id, login: u2.login }, 'QB.login result');
    const s = await ok('QB.getSession()', (cb) => QB.getSession(cb));
    assert.ok(s.session, `GET /session.json must return {"session":{…}}: ${fmt(s)}`);
    assert.equal(s.session.user_id, ctx.u2.id, `session after login: ${fmt(s)}`);
  }, ['users.create creates user 2 (tag_list as array)']);

  step('QB.logout turns the session back into an application session', async () => {
    const { err } = await call('QB.logout()', (cb) => QB.logout(cb));
    assert.equal(err, null, `QB.logout (DELETE /login.json) failed: ${fmt(err)}`);
    const s = await ok('QB.getSession() after logout', (cb) => QB.getSession(cb));
    assert.ok(s.session, `GET /session.json must return {"session":{…}}: ${fmt(s)}`);
    assert.equal(s.session.user_id, 0, `session after logout: ${fmt(s)}`);
  }, ['createSession + QB.login upgrades to a user session']);

  step('users.delete(own id) removes the user', async () => {
    const s = await ok('QB.createSession(user 2)', (cb) =>
      QB.createSession({ login: u2.login, password: u2.password }, cb));
    assert.equal(s.user_id, ctx.u2.id);
    const { err } = await call('QB.users.delete(own)', (cb) => QB.users.delete(ctx.u2.id, cb));
    assert.equal(err, null, `QB.users.delete(own) failed: ${fmt(err)}`);
    await ok('QB.createSession()', (cb) => QB.createSession(cb));
    await fails('QB.users.get(deleted id)', (cb) => QB.users.get(ctx.u2.id, cb), 404);
    await fails('QB.createSession(deleted user)', (cb) =>
      QB.createSession({ login: u2.login, password: u2.password }, cb), 401);
  }, ['users.create creates user 2 (tag_list as array)']);

  step('destroySession invalidates the token', async () => {
    await ok('QB.createSession()', (cb) => QB.createSession(cb));
    const token = QB.service.getSession().token;
    const { err } = await call('QB.destroySession()', (cb) => QB.destroySession(cb));
    assert.equal(err, null, `QB.destroySession failed: ${fmt(err)}`);
    // Re-use the destroyed token the way an app restoring a saved token would.
    QB.service.setSession({ token });
    const e2 = await fails('QB.getSession() with the destroyed token', (cb) => QB.getSession(cb), 401);
    assert.match(JSON.stringify(e2.message).toLowerCase(), /session does not exist/,
      `expired/unknown token body must contain "session does not exist" (drives config.on.sessionExpired): ${fmt(e2)}`);
    QB.service.setSession(null);
  }, ['createSession() gives an application session']);

  step('createSession with a wrong auth secret fails with 422', async () => {
    init(app.auth_secret + 'x');
    const err = await fails('QB.createSession(wrong secret)', (cb) => QB.createSession(cb), 422);
    assert.deepEqual(err.message, { errors: { base: ['Unexpected signature'] } }, `422 body: ${fmt(err)}`);
    init(app.auth_secret);
  }, ['QB.init with local endpoints']);

  return steps;
}

// Runs every step; a step whose prerequisites did not pass is skipped. report(msg) gets each protocol message.
async function runSteps(steps, report = () => {}) {
  report({ plan: steps.map((s) => s.name) });
  const status = {};
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for (const s of steps) {
    const missing = s.requires.filter((r) => status[r] !== 'pass');
    const t0 = Date.now();
    let msg;
    if (missing.length) {
      msg = { step: s.name, status: 'skip', ms: 0, error: `prerequisite did not pass: ${missing.join('; ')}` };
    } else {
      try {
        await s.fn();
        msg = { step: s.name, status: 'pass', ms: Date.now() - t0 };
      } catch (e) {
        msg = { step: s.name, status: 'fail', ms: Date.now() - t0, error: e && e.message || String(e) };
      }
    }
    status[s.name] = msg.status;
    counts[{ pass: 'passed', fail: 'failed', skip: 'skipped' }[msg.status]]++;
    report(msg);
  }
  const done = { done: true, ...counts };
  report(done);
  return done;
}

const run = (target, report) => runSteps(buildSteps(target), report);

// The standalone entry point of a scenario whose steps `build(target)` makes.
function main(build) {
  const overall = setTimeout(() => {
    process.stdout.write('@@SB ' + JSON.stringify({ fatal: 'scenario timed out' }) + '\n');
    process.exit(3);
  }, Number(process.env.SWITCHBOARD_SCENARIO_TIMEOUT_MS || 80000));
  let target;
  try {
    target = JSON.parse(process.env.SWITCHBOARD_SDK_TARGET || '');
  } catch (e) {
    console.error('SWITCHBOARD_SDK_TARGET must be JSON {"api":"host:port","app":{…}}: ' + e.message);
    process.exit(2);
  }
  runSteps(build(target), (m) => process.stdout.write('@@SB ' + JSON.stringify(m) + '\n'))
    .then((done) => {
      clearTimeout(overall);
      // The SDK may keep sockets/timers alive: exit explicitly once stdout is flushed.
      process.stdout.write('', () => process.exit(done.failed ? 1 : 0));
    }, (e) => {
      console.error(e && e.stack || e);
      process.exit(2);
    });
}

// Other scenarios (scenario-chat-rest.js) reuse the step runner and the SDK call helpers.
module.exports = { run, runSteps, main, call, ok, fails, fmt };

if (require.main === module) main(buildSteps);
