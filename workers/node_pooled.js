// Prelude of a warm Node.js sandbox (run with `node -e`): waits for the go byte on fd 3, then runs the request's
// entry file as the main module, the way `node main.js args...` would. Arguments and environment come as
// NUL-separated lists written by the engine.
const fs = require('fs');
const path = require('path');
const { runMain } = require('module');
// Whatever can be done before the request arrives is done now: the standard streams (fds 1 and 2 are already the
// run's pipes) and the console are built lazily on first use, which costs milliseconds.
void process.stdout;
void process.stderr;
void console.log;
fs.readSync(3, Buffer.alloc(1), 0, 1, null);
fs.closeSync(3);
const list = (name) => fs.readFileSync('/workspace/.runbox/' + name, 'utf8').split('\0').slice(0, -1);
for (const kv of list('env')) {
  const i = kv.indexOf('=');
  process.env[kv.slice(0, i)] = kv.slice(i + 1);
}
const [entry, ...args] = list('args');
const main = path.resolve('/workspace', entry);
process.argv = [process.argv[0], main, ...args];
// When the event loop runs dry, end at once (exit listeners still run) instead of tearing the whole VM down.
process.on('beforeExit', () => process.exit());
runMain(main);
