'use strict';
// Test helper: runs a throwaway Switchboard server for one test file.
//
//   const { startServer } = require('./server');
//   const srv = await startServer();          // fresh data dir, one app, serve on port 0
//   srv.app        -> { application_id, auth_key, auth_secret, account_key }
//   srv.httpsUrl   -> 'https://127.0.0.1:41235'   srv.apiHost -> '127.0.0.1:41235' (for QB endpoints.api)
//   srv.httpUrl    -> 'http://127.0.0.1:41234'
//   srv.certPath   -> self-signed cert to put in NODE_EXTRA_CA_CERTS
//   await srv.stop()  -> { code, signal } (SIGTERM, waits for exit; SIGKILL after a grace period)
//   startServer({ store: 'postgres://…' }) passes --store to `app create` and `serve`;
//   createPgDatabase(baseUrl) makes a fresh throwaway database for that (drop() removes it).
//
// Env: SWITCHBOARD_BIN (binary; default ${CARGO_TARGET_DIR:-<repo>/target}/debug/switchboard),
//      SWITCHBOARD_TEST_LOG=1 (echo the server's stderr live), SWITCHBOARD_KEEP_DATA=1 (keep the data dir).

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const READY_TIMEOUT_MS = Number(process.env.SWITCHBOARD_READY_TIMEOUT_MS || 30000);
const STOP_GRACE_MS = 40000; // longer than the server's own 30 s drain, so a slow drain shows as itself
const MAX_LOG_CHARS = 200000;

function binPath() {
  if (process.env.SWITCHBOARD_BIN) return path.resolve(process.env.SWITCHBOARD_BIN);
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
    : path.join(REPO_ROOT, 'target');
  return path.join(target, 'debug', 'switchboard');
}

// The server reads SWITCHBOARD_* settings from the environment (SWITCHBOARD_STORE, _CONFIG, …): start it
// with none of them, so a developer's shell cannot change what the tests run against.
function serverEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SWITCHBOARD_')) delete env[k];
  return env;
}

function tail(s, n = 4000) {
  return s.length > n ? '…' + s.slice(-n) : s;
}

// Runs `switchboard app create --name NAME --json --data-dir DIR`; resolves the parsed JSON line.
function createApp(bin, dataDir, name, storeArgs) {
  const args = ['app', 'create', '--name', name, '--json', '--data-dir', dataDir, ...storeArgs];
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 30000, maxBuffer: 1 << 20, env: serverEnv() }, (err, stdout, stderr) => {
      const cmd = `${bin} ${args.join(' ')}`;
      if (err) {
        reject(new Error(`\`${cmd}\` failed (${err.code ?? err.signal ?? err.message})\n` +
          `stdout: ${tail(stdout)}\nstderr: ${tail(stderr)}`));
        return;
      }
      const line = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{')).pop();
      let app;
      try {
        app = JSON.parse(line);
      } catch (e) {
        reject(new Error(`\`${cmd}\` printed no JSON line: ${e.message}\nstdout: ${tail(stdout)}\nstderr: ${tail(stderr)}`));
        return;
      }
      for (const k of ['application_id', 'auth_key', 'auth_secret']) {
        if (app[k] === undefined || app[k] === null || app[k] === '') {
          reject(new Error(`\`${cmd}\` JSON lacks "${k}": ${line}`));
          return;
        }
      }
      resolve(app);
    });
  });
}

const BANNER = {
  httpUrl: /REST API \(HTTP\)\s+(http:\/\/\S+)/,
  httpsUrl: /REST API \(HTTPS\)\s+(https:\/\/\S+)/,
  certPath: /TLS certificate\s+(\S+)/,
};

async function startServer({ name = 'sdk-test', store, extraArgs = [] } = {}) {
  const bin = binPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`switchboard binary not found at ${bin} (build it with \`cargo build\`, or set SWITCHBOARD_BIN)`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-sdk-'));
  const storeArgs = store ? ['--store', store] : [];
  let app;
  try {
    app = await createApp(bin, dataDir, name, storeArgs);
  } catch (e) {
    cleanup(dataDir);
    throw e;
  }

  const args = ['serve', '--data-dir', dataDir, ...storeArgs,
    '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--xmpp-addr', '127.0.0.1:0', '--turn-addr', '127.0.0.1:0',
    '--sfu-addr', '127.0.0.1:0', ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() });
  let stdoutLog = '';
  let stderrLog = '';
  const banner = {};
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });

  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderrLog = (stderrLog + d).slice(-MAX_LOG_CHARS);
    if (process.env.SWITCHBOARD_TEST_LOG) process.stderr.write(d);
  });

  const ready = new Promise((resolve, reject) => {
    const describe = (what) => new Error(`switchboard serve ${what}\ncommand: ${bin} ${args.join(' ')}\n` +
      `stdout:\n${tail(stdoutLog)}\nstderr:\n${tail(stderrLog)}`);
    const timer = setTimeout(() => reject(describe(`did not print "Switchboard ready" within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS);
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      stdoutLog = (stdoutLog + line + '\n').slice(-MAX_LOG_CHARS);
      for (const [key, re] of Object.entries(BANNER)) {
        const m = re.exec(line);
        if (m) banner[key] = m[1].replace(/\/+$/, '');
      }
      if (/Switchboard ready/.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', (e) => { clearTimeout(timer); reject(describe(`could not be started: ${e.message}`)); });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(describe(`exited (code ${code}, signal ${signal}) before it was ready`));
    });
  });

  async function stop() {
    if (!exitInfo) {
      child.kill('SIGTERM');
      const grace = setTimeout(() => {
        process.stderr.write(`switchboard did not exit ${STOP_GRACE_MS} ms after SIGTERM; sending SIGKILL\n`);
        child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await exited;
      clearTimeout(grace);
    }
    cleanup(dataDir);
    return exitInfo;
  }

  try {
    await ready;
  } catch (e) {
    await stop();
    throw e;
  }

  if (!banner.httpsUrl) {
    await stop();
    throw new Error(`"Switchboard ready" printed but no "REST API (HTTPS)  https://…" banner line:\n${stdoutLog}`);
  }
  const certPath = banner.certPath || path.join(dataDir, 'tls', 'cert.pem');
  if (!fs.existsSync(certPath)) {
    await stop();
    throw new Error(`TLS certificate ${certPath} (from the banner) does not exist`);
  }
  const apiHost = new URL(banner.httpsUrl).host; // '127.0.0.1:PORT', what QB.init's endpoints.api wants

  return {
    bin,
    dataDir,
    app,
    httpUrl: banner.httpUrl,
    httpsUrl: banner.httpsUrl,
    apiHost,
    certPath,
    process: child,
    logs: () => ({ stdout: stdoutLog, stderr: stderrLog }),
    exitInfo: () => exitInfo,
    stop,
  };
}

function cleanup(dataDir) {
  if (process.env.SWITCHBOARD_KEEP_DATA) {
    process.stderr.write(`switchboard data dir kept: ${dataDir}\n`);
    return;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}

// Whether NODE_EXTRA_CA_CERTS in *this* process already points at certPath (Node reads it only at startup).
function processTrustsCert(certPath) {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra) return false;
  try {
    return fs.realpathSync(extra) === fs.realpathSync(certPath);
  } catch {
    return false;
  }
}

// Runs a scenario script (see scenario-users.js) in a child `node` with NODE_EXTRA_CA_CERTS=certPath.
// The scenario reports on stdout with lines `@@SB <json>`; everything else is SDK noise kept for diagnostics.
// Resolves { plan, steps, done, code, signal, stdout, stderr }.
function runScenario(script, { certPath, target, timeoutMs = 90000 }) {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: certPath, SWITCHBOARD_SDK_TARGET: JSON.stringify(target) };
    delete env.NODE_TLS_REJECT_UNAUTHORIZED; // the cert must be trusted for real
    delete env.NODE_TEST_CONTEXT; // the child is a plain script, not a test-runner child
    const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { plan: null, steps: [], done: null, stdout: '', stderr: '' };
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      out.stdout = (out.stdout + line + '\n').slice(-MAX_LOG_CHARS);
      if (!line.startsWith('@@SB ')) return;
      let msg;
      try { msg = JSON.parse(line.slice(5)); } catch { return; }
      if (msg.plan) out.plan = msg.plan;
      else if (msg.step) out.steps.push(msg);
      else if (msg.done) out.done = msg;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => { out.stderr = (out.stderr + d).slice(-MAX_LOG_CHARS); });
    const timer = setTimeout(() => {
      out.timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    // 'close' (not 'exit') so every stdout line has been read.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ...out, code, signal });
    });
  });
}

// Creates a fresh database next to the one in baseUrl (e.g. SWITCHBOARD_TEST_PG_URL) with psql, so a run
// never sees another run's (or the Rust store tests') rows. Resolves { url, drop() }.
function createPgDatabase(baseUrl) {
  const name = `switchboard_sdk_${process.pid}_${Date.now().toString(36)}`;
  const url = new URL(baseUrl);
  url.pathname = '/' + name;
  const psql = (sql) => new Promise((resolve, reject) => {
    execFile('psql', [baseUrl, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { timeout: 30000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql ${baseUrl} -c "${sql}" failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  // template0 accepts no connections, so no session on template1 can make CREATE DATABASE fail.
  return psql(`CREATE DATABASE ${name} TEMPLATE template0`).then(() => ({
    url: url.toString(),
    drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  }));
}

module.exports = { startServer, binPath, processTrustsCert, runScenario, createPgDatabase, REPO_ROOT };
