'use strict';
// Chat REST (dialogs, messages, receipts, unread counts) with the stock `quickblox` SDK, once per store.
// See scenario-chat-rest.js for the steps.

const path = require('node:path');
const { scenarioSuite } = require('./suite');

scenarioSuite('chat REST with the QuickBlox JS SDK', path.join(__dirname, 'scenario-chat-rest.js'), 'chat-rest');
