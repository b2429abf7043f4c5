//! End to end against a real `runbox serve` (started by scripts/test.sh, which passes its URL and a key): the
//! generated client executes code and handles session files byte for byte; the hand-written helpers stream a run
//! over SSE and over the WebSocket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AxiosError } from 'axios';

import { currentConfig, getRunbox, RunboxSocket, streamExecute, streamSessionExecute } from '../src';

// Zero-config: the mutator took the server and the key from RUNBOX_URL and RUNBOX_API_KEY.
if (!process.env.RUNBOX_URL || !process.env.RUNBOX_API_KEY) throw new Error('RUNBOX_URL and RUNBOX_API_KEY name the server under test');
assert.equal(currentConfig().baseUrl, process.env.RUNBOX_URL);
const api = getRunbox();

test('execute print(6*7) gives 42', async () => {
  const result = await api.execute({ language: 'python', code: 'print(6*7)' });
  assert.equal(result.status, 'ok');
  assert.equal(result.stdout, '42\n');
});

test('languages list python as available', async () => {
  const languages = await api.listLanguages();
  assert.ok(languages.some((l) => l.id === 'python' && l.available));
});

test('a session keeps state and its files round-trip byte for byte', async () => {
  const session = await api.createSession({ language: 'python' });
  try {
    await api.sessionExecute(session.id, { code: 'x = 5' });
    const cell = await api.sessionExecute(session.id, { code: 'print(x * 2)' });
    assert.equal(cell.stdout, '10\n');

    // Every byte value, including ones that are not valid UTF-8.
    const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    // A Buffer is sent as the raw body whatever type the spec gives the upload body (number[] or Blob).
    const written = await api.uploadFile(session.id, 'data/blob.bin', bytes as unknown as Parameters<typeof api.uploadFile>[2]);
    assert.equal(written.size, bytes.length);

    const downloaded = await api.downloadFile(session.id, 'data/blob.bin', { responseType: 'arraybuffer' });
    assert.deepEqual(Buffer.from(downloaded as ArrayBuffer), bytes);

    const seen = await api.sessionExecute(session.id, {
      code: "print(open('data/blob.bin', 'rb').read() == bytes(i % 256 for i in range(512)))",
    });
    assert.equal(seen.stdout, 'True\n');

    const listing = await api.listFiles(session.id, { path: 'data' });
    assert.ok(listing.some((f) => f.name.endsWith('blob.bin') && f.size === 512), JSON.stringify(listing));

    const events: string[] = [];
    let result;
    for await (const ev of streamSessionExecute(session.id, { code: 'print("a", flush=True)\nprint("b")\nx + 1' })) {
      events.push(ev.event);
      if (ev.event === 'result') result = ev.data;
    }
    assert.equal(events.at(-1), 'result');
    assert.ok(events.includes('stdout'));
    assert.equal((result as { stdout: string }).stdout, 'a\nb\n');
  } finally {
    await api.deleteSession(session.id);
  }
});

test('a streamed run delivers its output before the result', async () => {
  const chunks: string[] = [];
  let status: string | undefined;
  for await (const ev of streamExecute({ language: 'python', code: 'import time\nprint(1, flush=True)\ntime.sleep(0.2)\nprint(2)' })) {
    if (ev.event === 'stdout') chunks.push((ev.data as { data: string }).data);
    if (ev.event === 'result') status = (ev.data as { status: string }).status;
  }
  assert.equal(chunks.join(''), '1\n2\n');
  assert.equal(status, 'ok');
});

test('a run over the WebSocket streams its output then its result', async () => {
  const socket = await RunboxSocket.connect();
  try {
    const types: string[] = [];
    let stdout = '';
    for await (const ev of socket.run({ language: 'python', code: 'print(input() * 2)' }, 'w1')) {
      types.push(ev.type);
      if (ev.type === 'started') socket.stdin('w1', 'ab\n', true);
      if (ev.type === 'stdout') stdout += String(ev.data);
    }
    assert.equal(types[0], 'started');
    assert.equal(types.at(-1), 'result');
    assert.equal(stdout, 'abab\n');
  } finally {
    socket.close();
  }
});

test('errors carry the server code', async () => {
  await assert.rejects(api.getSession('sess_missing'), (e: AxiosError<{ code: string }>) => {
    assert.equal(e.response?.status, 404);
    assert.equal(e.response?.data.code, 'not_found');
    return true;
  });
});
