'use strict';
// Push subscriptions and events with the stock `quickblox` SDK, once per store. See scenario-push.js.

const path = require('node:path');
const { scenarioSuite } = require('./suite');

scenarioSuite('push notifications with the QuickBlox JS SDK', path.join(__dirname, 'scenario-push.js'), 'push');
