'use strict';
// Custom objects with the stock `quickblox` SDK, once per store: the class is made with
// `switchboard class create` against the server's data dir (the owner's tool), then scenario-data.js runs.

const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { scenarioSuite } = require('./suite');

function createClass(srv, storeUrl) {
  const args = ['class', 'create', '--app', String(srv.app.application_id), '--name', 'Car',
    '--field', 'model:string', '--field', 'year:integer', '--field', 'price:float', '--field', 'tags:string[]',
    '--data-dir', srv.dataDir, ...(storeUrl ? ['--store', storeUrl] : [])];
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SWITCHBOARD_')) delete env[k];
  execFileSync(srv.bin, args, { env, timeout: 30000 });
}

scenarioSuite('custom objects with the QuickBlox JS SDK', path.join(__dirname, 'scenario-data.js'), 'data',
  { setup: createClass });
