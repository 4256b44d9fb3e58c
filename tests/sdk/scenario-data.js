'use strict';
// Custom objects with the stock `quickblox` SDK: QB.data.create (typed fields, per-record permissions),
// QB.data.list with operators, sort, limit and count, QB.data.update, and QB.data.delete by id, by ids and by
// criteria. The class `Car` (model:string, year:integer, price:float, tags:string[]) is created by data.test.js
// with the CLI. Same step protocol and standalone use as scenario-users.js.

const assert = require('node:assert/strict');
const { runSteps, main, ok, fails, fmt } = require('./scenario-users');

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

  return steps;
}

const run = (target, report) => runSteps(buildSteps(target), report);
module.exports = { run };

if (require.main === module) main(buildSteps);
