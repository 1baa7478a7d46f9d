#!/usr/bin/env node
'use strict';
// Entry of the `spot-sweep` command (package.json "bin"). The CLI is TypeScript; tsx compiles it on
// the fly so that `npm ci` is the only setup step.
require('tsx/cjs/api').register();
const { main } = require('../lib/cli/main.ts');
const { EXIT_CODES } = require('../lib/contract/names.ts');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // Only a bug gets here (user errors are handled in main): show it in full.
    console.error(err);
    process.exitCode = EXIT_CODES.cli.bug;
  },
);
