'use strict';
// One SDK scenario (a scenario-*.js speaking the @@SB step protocol) against a real Switchboard, once per
// store: SQLite (the default) and PostgreSQL (a fresh database next to SWITCHBOARD_TEST_PG_URL). Each
// reported step becomes a subtest; then SIGTERM must give exit code 0.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, processTrustsCert, runScenario, createPgDatabase } = require('./server');

const IS_CI = /^(true|1|yes)$/i.test(process.env.CI || '');
const PG_URL = process.env.SWITCHBOARD_TEST_PG_URL;

const STORES = [
  { name: 'sqlite' },
  { name: 'postgres', pg: true, skip: !PG_URL && !IS_CI && 'SWITCHBOARD_TEST_PG_URL is not set' },
];

// `title` names the suite, `scenario` is the script's path, `name` tags the server's data dir;
// `options.setup(srv, storeUrl)` runs once the server is up (e.g. CLI commands against its data dir).
function scenarioSuite(title, scenario, name, options = {}) {
 for (const store of STORES) {
  describe(`${title} (${store.name} store)`, { skip: store.skip }, () => {
    let srv;
    let pgdb;

    before(async () => {
      if (store.pg) {
        assert.ok(PG_URL, 'SWITCHBOARD_TEST_PG_URL must be set (CI runs every store)');
        pgdb = await createPgDatabase(PG_URL);
      }
      srv = await startServer({ name: `sdk-${name}-${store.name}`, store: pgdb && pgdb.url });
      if (options.setup) await options.setup(srv, pgdb && pgdb.url);
    });

    after(async () => {
      if (srv && !srv.exitInfo()) await srv.stop();
      if (pgdb) await pgdb.drop();
    });

    it('server prints its HTTPS URL and certificate', () => {
      assert.match(srv.httpsUrl, /^https:\/\/127\.0\.0\.1:\d+$/, `HTTPS URL from the banner: ${srv.httpsUrl}`);
      assert.match(srv.httpUrl || '', /^http:\/\/127\.0\.0\.1:\d+$/, `HTTP URL from the banner: ${srv.httpUrl}`);
      assert.equal(typeof srv.app.application_id, 'number', `app create JSON: ${JSON.stringify(srv.app)}`);
    });

    it('SDK scenario', async (t) => {
      const target = { api: srv.apiHost, app: srv.app };
      let result;
      if (processTrustsCert(srv.certPath)) {
        // This process already trusts the server's cert: run the SDK here (it is a per-process singleton,
        // so this only works for one server per process).
        const out = { plan: null, steps: [], done: null };
        await require(scenario).run(target, (m) => {
          if (m.plan) out.plan = m.plan;
          else if (m.step) out.steps.push(m);
          else if (m.done) out.done = m;
        });
        result = { ...out, code: out.done && out.done.failed ? 1 : 0, signal: null, stdout: '', stderr: '' };
      } else {
        result = await runScenario(scenario, { certPath: srv.certPath, target });
      }

      const diag = () => `\n--- scenario stdout (tail) ---\n${result.stdout.slice(-6000)}` +
        `\n--- scenario stderr (tail) ---\n${result.stderr.slice(-6000)}` +
        `\n--- server stderr (tail) ---\n${srv.logs().stderr.slice(-6000)}`;

      assert.ok(result.plan, `scenario did not start (exit ${result.code}, signal ${result.signal})${diag()}`);
      const byName = new Map(result.steps.map((s) => [s.step, s]));
      for (const name of result.plan) {
        const s = byName.get(name);
        if (s && s.status === 'skip') {
          await t.test(name, { skip: s.error }, () => {});
          continue;
        }
        await t.test(name, () => {
          assert.ok(s, `step never reported: the scenario stopped early (exit ${result.code}, signal ` +
            `${result.signal}${result.timedOut ? ', timed out' : ''})${diag()}`);
          if (s.status !== 'pass') assert.fail(s.error || `status ${s.status}`);
        });
      }
      assert.ok(result.done, `scenario did not finish (exit ${result.code}, signal ${result.signal})${diag()}`);
      assert.equal(result.code, result.done.failed ? 1 : 0, `scenario exit code ${result.code}${diag()}`);
    });

    it('server exits cleanly on SIGTERM', async () => {
      const { code, signal } = await srv.stop();
      const logs = `\nserver stderr (tail):\n${srv.logs().stderr.slice(-4000)}`;
      assert.equal(signal, null, `server was killed by ${signal} instead of exiting after SIGTERM${logs}`);
      assert.equal(code, 0, `server exit code after SIGTERM${logs}`);
    });
  });
}
}

module.exports = { scenarioSuite };
