'use strict';
// Users & auth against a real Switchboard, with the stock `quickblox` SDK (see scenario-users.js), once per
// store: SQLite (the default) and PostgreSQL (a fresh database next to SWITCHBOARD_TEST_PG_URL).
// Run: node --test tests/sdk/   (SWITCHBOARD_BIN overrides the binary; default target/debug/switchboard)

const path = require('node:path');
const { scenarioSuite } = require('./suite');

scenarioSuite('users and auth with the QuickBlox JS SDK', path.join(__dirname, 'scenario-users.js'), 'users');
