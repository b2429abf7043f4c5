//! The Server-Sent Events parser on its own, with records split at awkward places across chunks.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseSse } from '../src/events';

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function records(chunks: string[]): Promise<Array<{ event: string; data: string }>> {
  const out = [];
  for await (const record of parseSse(streamOf(chunks))) out.push(record);
  return out;
}

test('records split across chunks, CRLF split between chunks, comments and multi-line data', async () => {
  const got = await records([
    ': keep-alive\n\nevent: std',
    'out\r',
    '\ndata: {"data":"1\\n"}\r\n\r\n',
    'data: a\ndata: b\n\nevent: result\ndata: {}\n\n',
  ]);
  assert.deepEqual(got, [
    { event: 'stdout', data: '{"data":"1\\n"}' },
    { event: 'message', data: 'a\nb' },
    { event: 'result', data: '{}' },
  ]);
});

test('a UTF-8 character split between chunks stays whole', async () => {
  const bytes = new TextEncoder().encode('data: é\n\n');
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes.slice(0, 7));
      controller.enqueue(bytes.slice(7));
      controller.close();
    },
  });
  const got = [];
  for await (const record of parseSse(stream)) got.push(record);
  assert.deepEqual(got, [{ event: 'message', data: 'é' }]);
});
