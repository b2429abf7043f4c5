// Runs the real piston-client (npm, pinned in package-lock.json) against runbox's /api/v2 routes: runtimes, an
// execute with the client's defaults (JSON posted as text/plain, args 1 2 3, -1 memory limits), a compiled
// language. Usage: node run.mjs http://127.0.0.9:PORT; exits non-zero on the first mismatch.
import assert from "node:assert/strict";
import piston from "piston-client";

const client = piston({ server: process.argv[2] });

const runtimes = await client.runtimes();
assert.ok(Array.isArray(runtimes), `runtimes: ${JSON.stringify(runtimes)}`);
assert.ok(runtimes.some((r) => r.language === "python"), "python is listed");

const r = await client.execute("python", "import sys\nprint(6*7, sys.argv[1:])");
assert.equal(r.run?.stdout, "42 ['1', '2', '3']\n", JSON.stringify(r));
assert.equal(r.run.code, 0);
assert.equal(r.language, "python");

const c = await client.execute("c", '#include <stdio.h>\nint main(){puts("hi"); return 2;}', { args: [] });
assert.equal(c.compile?.code, 0, JSON.stringify(c));
assert.deepEqual([c.run.stdout, c.run.code, c.run.status], ["hi\n", 2, "RE"]);

const e = await client.execute("cobol", "x");
assert.match(e.message ?? "", /runtime is unknown/, JSON.stringify(e));

console.log("piston-client: 3 passed, 0 failed");
