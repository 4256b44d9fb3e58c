'use strict';
// Content (blob upload, download by public and private URL, delete) with the stock `quickblox` SDK, once per
// store. See scenario-content.js for the steps.

const path = require('node:path');
const { scenarioSuite } = require('./suite');

scenarioSuite('content with the QuickBlox JS SDK', path.join(__dirname, 'scenario-content.js'), 'content');
