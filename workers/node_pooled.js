// Prelude of a warm Node.js sandbox (run with `node -e`): waits for the go byte on fd 3, then runs the request's
// entry file as the main module, the way `node main.js args...` would.
const fs = require('fs');
fs.readSync(3, Buffer.alloc(1), 0, 1, null);
fs.closeSync(3);
const request = JSON.parse(fs.readFileSync('/workspace/.runbox/request.json', 'utf8'));
Object.assign(process.env, request.env);
const entry = require('path').resolve('/workspace', request.entry);
process.argv = [process.argv[0], entry, ...request.args];
require('module').runMain(entry);
