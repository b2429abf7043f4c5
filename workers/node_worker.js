// runbox's JavaScript/TypeScript session worker: a persistent Node.js global scope inside the sandbox.
//
// Cells arrive on fd 3 as `EXEC <id> <nbytes>\n` plus the code; replies go to fd 4 as one JSON object per line
// (`ready`, then `done` per cell). Cells run as scripts in the global context, so `let`, `const`, `class` and
// function declarations persist from one cell to the next and the completion value of the last statement is the
// cell's result. Cells using top-level `await` run inside an async function whose top-level declarations are
// turned into globals. Built-in modules only; with RUNBOX_TYPESCRIPT=1 each cell is first transpiled with the
// `typescript` package installed on the host.
'use strict';

const fs = require('fs');
const vm = require('vm');
const util = require('util');

const PROTO_OUT = 4;
const typescript = process.env.RUNBOX_TYPESCRIPT === '1' ? loadTypescript() : null;

function loadTypescript() {
  for (const p of ['/usr/local/lib/node_modules/typescript', '/usr/lib/node_modules/typescript', 'typescript']) {
    try {
      return require(p);
    } catch (_) {}
  }
  throw new Error('the typescript package is not installed');
}

function send(message) {
  fs.writeSync(PROTO_OUT, JSON.stringify(message) + '\n');
}

function describe(err) {
  if (err && typeof err === 'object') {
    return {
      name: String(err.name || 'Error'),
      value: String(err.message ?? ''),
      traceback: cleanStack(String(err.stack || `${err.name}: ${err.message}`)),
    };
  }
  return { name: 'Error', value: util.inspect(err), traceback: `Uncaught ${util.inspect(err)}` };
}

// Frames of the worker itself and of Node's internals say nothing about the user's code.
function cleanStack(stack) {
  return stack
    .split('\n')
    .filter((line) => !line.includes(__filename) && !/\(node:|at node:/.test(line))
    .join('\n');
}

function bundle(value) {
  const out = { 'text/plain': util.inspect(value, { depth: 4, colors: false }) };
  if (value !== null && typeof value === 'object' && typeof value._repr_html_ === 'function') {
    try {
      out['text/html'] = String(value._repr_html_());
    } catch (_) {}
  }
  return out;
}

// Splits code into top-level statements at `;` outside brackets, strings, templates and comments.
function topLevelStatements(code) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < code.length; i++) {
    const c = code[i];
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < code.length && code[i] !== c; i++) if (code[i] === '\\') i++;
    } else if (c === '/' && code[i + 1] === '/') {
      while (i < code.length && code[i] !== '\n') i++;
    } else if (c === '/' && code[i + 1] === '*') {
      i = code.indexOf('*/', i + 2);
      if (i < 0) i = code.length;
      else i++;
    } else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (c === ';' && depth === 0) {
      parts.push(code.slice(start, i));
      start = i + 1;
    } else if (c === '\n' && depth === 0 && /[)\]}\w$'"`]\s*$/.test(code.slice(start, i)) && /^\s*[\w$({\['"`!]/.test(code.slice(i + 1)) && !/^\s*(else|catch|finally|in|of|instanceof)\b/.test(code.slice(i + 1))) {
      // A line break ends a statement unless the next line continues it (`.then()`, an operator, `else`...).
      parts.push(code.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(code.slice(start));
  return parts.filter((p) => p.trim() !== '');
}

// An async cell's top-level declarations become globals (so they outlive the wrapper function), and its last
// statement, if it is an expression, becomes its result.
function asyncBody(code) {
  const statements = topLevelStatements(code).map((st) =>
    st
      .replace(/^(\s*)(?:let|const|var)\s+([A-Za-z_$][\w$]*)\s*=/, '$1globalThis.$2 =')
      .replace(/^(\s*)(async\s+)?function\s*(\*?)\s*([A-Za-z_$][\w$]*)\s*\(/, '$1globalThis.$4 = $2function$3 $4(')
      .replace(/^(\s*)class\s+([A-Za-z_$][\w$]*)/, '$1globalThis.$2 = class $2'),
  );
  const last = statements[statements.length - 1] || '';
  const statement = /^\s*(?:[}\])]|(?:let|const|var|if|for|while|do|switch|try|return|throw|function|class|import|export)\b|globalThis\.[\w$]+\s*=)/;
  if (last && !statement.test(last) && !/^\s*\/\//.test(last)) {
    statements[statements.length - 1] = 'return (' + last.trim() + ')';
  }
  return statements.join(';\n');
}

let count = 0;

async function runCell(code, filename) {
  if (typescript) {
    code = typescript.transpileModule(code, {
      compilerOptions: { target: typescript.ScriptTarget.ES2022, module: typescript.ModuleKind.None },
      reportDiagnostics: false,
    }).outputText;
  }
  let script;
  try {
    script = new vm.Script(code, { filename });
  } catch (err) {
    if (!(err instanceof SyntaxError) || !/await/.test(code)) throw err;
    const body = asyncBody(code);
    script = new vm.Script(`(async () => {\n${body}\n})()`, { filename, lineOffset: -1 });
    return await script.runInThisContext({ breakOnSigint: true });
  }
  const value = script.runInThisContext({ breakOnSigint: true });
  return value instanceof Promise ? await value : value;
}

async function handle(id, code) {
  count += 1;
  let reply;
  try {
    const value = await runCell(code, `cell${count}.${typescript ? 'ts' : 'js'}`);
    reply = { status: 'ok', result: value === undefined ? null : bundle(value) };
    if (value !== undefined) globalThis._ = value;
  } catch (err) {
    const interrupted = err && err.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
    reply = interrupted ? { status: 'interrupted', error: describe(err) } : { status: 'error', error: describe(err) };
  }
  send({ event: 'done', id, execution_count: count, ...reply });
}

// process.exit() from a cell ends the session with status `exit`.
const realExit = process.exit.bind(process);
let currentId = 0;
process.exit = (code) => {
  send({ event: 'done', id: currentId, execution_count: count, status: 'exit', exit_code: code ?? 0 });
  realExit(code ?? 0);
};
// An interrupt between cells (or during an await) must not kill the worker.
process.on('SIGINT', () => {});
process.on('unhandledRejection', (err) => {
  process.stderr.write(`Unhandled promise rejection: ${describe(err).traceback}\n`);
});

async function main() {
  globalThis.require = require;
  globalThis.display = (...values) => {
    for (const v of values) send({ event: 'display', id: currentId, data: bundle(v) });
  };
  send({ event: 'ready', language: typescript ? 'typescript' : 'javascript', version: process.versions.node });
  let buffer = Buffer.alloc(0);
  const queue = [];
  let busy = false;
  const pump = async () => {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const { id, code } = queue.shift();
      currentId = id;
      await handle(id, code);
    }
    busy = false;
  };
  const input = fs.createReadStream(null, { fd: 3 });
  input.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const nl = buffer.indexOf(10);
      if (nl < 0) break;
      const [word, id, size] = buffer.subarray(0, nl).toString().split(' ');
      const need = nl + 1 + Number(size);
      if (word !== 'EXEC' || Number.isNaN(need)) {
        buffer = buffer.subarray(nl + 1);
        continue;
      }
      if (buffer.length < need) break;
      queue.push({ id: Number(id), code: buffer.subarray(nl + 1, need).toString() });
      buffer = buffer.subarray(need);
    }
    pump();
  });
  input.on('end', () => realExit(0));
}

main();
