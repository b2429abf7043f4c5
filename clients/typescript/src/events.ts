//! The hand-written part of the client: what OpenAPI cannot describe, so orval cannot generate. Server-Sent Events
//! of `POST /execute/stream` and `POST /sessions/{id}/execute/stream`, and the `GET /ws` WebSocket protocol. Uses
//! the platform's `fetch` and `WebSocket` (Node 20: `fetch` built in, `WebSocket` with `--experimental-websocket`
//! or passed in), with the base URL and key from `configure()`.

import { authHeaders, currentConfig } from './mutator';
import type { CellResult, ErrorBody, ExecuteBody, ExecutionResult, SessionExecuteBody } from './generated/runbox.schemas';

/** Output written by the program: `data` as text, `base64` the exact bytes when they were not valid UTF-8. */
export interface OutputChunk {
  data: string;
  base64?: string;
}

/** One event of a streamed run. `result` ends the stream; an `error` event is thrown as a `RunboxStreamError`. */
export type StreamEvent<R> =
  | { event: 'stdout' | 'stderr' | 'compile'; data: OutputChunk }
  | { event: 'display'; data: { mime_type: string; data: string } }
  | { event: 'test_case'; data: Record<string, unknown> }
  | { event: 'result'; data: R }
  | { event: string; data: unknown };

/** An error answer (HTTP status, or an `error` event in a stream) carrying the server's `code`. */
export class RunboxStreamError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly details?: unknown,
  ) {
    super(`${code}: ${message}`);
    this.name = 'RunboxStreamError';
  }
}

/** Splits an SSE byte stream into `{event, data}` records (data lines joined by newlines, comments skipped). */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A CR ending the buffer may be the first half of a CRLF split across chunks: wait for the next one.
        if (!done && newline === buffer.length - 1 && buffer.endsWith('\r')) break;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) yield { event, data: data.join('\n') };
          event = 'message';
          data = [];
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
      }
      if (done) break;
    }
    if (data.length > 0) yield { event, data: data.join('\n') };
  } finally {
    reader.releaseLock();
  }
}

async function* streamRun<R>(path: string, body: unknown, signal?: AbortSignal): AsyncGenerator<StreamEvent<R>> {
  const { baseUrl } = currentConfig();
  const response = await fetch(new URL(path, baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders() },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok || !response.body) {
    const text = await response.text();
    let error: Partial<ErrorBody> = {};
    try {
      error = JSON.parse(text) as ErrorBody;
    } catch {
      error = { code: 'http_error', message: text.slice(0, 200) };
    }
    throw new RunboxStreamError(error.code ?? 'http_error', error.message ?? response.statusText, response.status, error.details);
  }
  for await (const { event, data } of parseSse(response.body)) {
    const parsed: unknown = JSON.parse(data);
    if (event === 'error') {
      const e = parsed as ErrorBody;
      throw new RunboxStreamError(e.code, e.message, undefined, e.details);
    }
    yield { event, data: parsed } as StreamEvent<R>;
    if (event === 'result') return;
  }
  throw new RunboxStreamError('stream_ended', 'the stream ended without a result');
}

/** `POST /execute/stream`: yields `compile`, `stdout`, `stderr`, `test_case`, then `result` (an ExecutionResult). */
export function streamExecute(body: ExecuteBody, signal?: AbortSignal): AsyncGenerator<StreamEvent<ExecutionResult>> {
  return streamRun<ExecutionResult>('/execute/stream', body, signal);
}

/** `POST /sessions/{id}/execute/stream`: yields `stdout`, `stderr`, `display`, then `result` (a CellResult). */
export function streamSessionExecute(
  sessionId: string,
  body: SessionExecuteBody,
  signal?: AbortSignal,
): AsyncGenerator<StreamEvent<CellResult>> {
  return streamRun<CellResult>(`/sessions/${encodeURIComponent(sessionId)}/execute/stream`, body, signal);
}

/** A message the server sends on `/ws`, tagged with the run's `id`. */
export interface WsEvent {
  type: string;
  id?: string;
  [field: string]: unknown;
}

/** The minimal WebSocket surface used here (the WHATWG one: browsers, Node 22, undici, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * One `/ws` connection. `run()` starts an execution (or a session cell, with `session_id`) and yields its events
 * up to and including `result` (or throws on `error`); several runs may share the socket. The key travels as the
 * `runbox.key.*` subprotocol, which browsers can send (they cannot set headers on a WebSocket).
 */
export class RunboxSocket {
  private readonly listeners = new Map<string, (event: WsEvent) => void>();
  private counter = 0;

  private constructor(private readonly socket: WebSocketLike) {
    socket.addEventListener('message', (message: { data: unknown }) => {
      let event: WsEvent;
      try {
        event = JSON.parse(String(message.data)) as WsEvent;
      } catch {
        return;
      }
      if (event.id !== undefined) this.listeners.get(event.id)?.(event);
      else for (const listener of this.listeners.values()) listener(event);
    });
    socket.addEventListener('close', () => {
      for (const listener of this.listeners.values()) listener({ type: 'closed' });
    });
  }

  /** Opens `/ws` on the configured server; `WebSocketImpl` defaults to the global `WebSocket`. */
  static connect(WebSocketImpl?: WebSocketConstructor): Promise<RunboxSocket> {
    const Impl = WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Impl) throw new Error('no WebSocket implementation: pass one (Node 20: run with --experimental-websocket)');
    const { baseUrl, apiKey } = currentConfig();
    const url = new URL('/ws', baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const protocols = ['runbox.v1', ...(apiKey ? [`runbox.key.${base64url(apiKey)}`] : [])];
    const socket = new Impl(url.toString(), protocols);
    return new Promise((resolve, reject) => {
      socket.addEventListener('open', () => resolve(new RunboxSocket(socket)));
      socket.addEventListener('error', () => reject(new Error(`cannot open ${url}`)));
    });
  }

  /** Runs `body` (any `/execute` field, or `session_id` + `code`) and yields its events until `result`. */
  async *run(body: ExecuteBody & { session_id?: string }, id = `run${++this.counter}`): AsyncGenerator<WsEvent> {
    const queue: WsEvent[] = [];
    let wake: (() => void) | undefined;
    this.listeners.set(id, (event) => {
      queue.push(event);
      wake?.();
    });
    try {
      this.socket.send(JSON.stringify({ ...body, type: 'execute', id }));
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const event = queue.shift()!;
        if (event.type === 'closed') throw new RunboxStreamError('closed', 'the WebSocket closed during the run');
        if (event.type === 'error') {
          throw new RunboxStreamError(String(event.code ?? 'error'), String(event.message ?? ''), undefined, event.details);
        }
        yield event;
        if (event.type === 'result') return;
      }
    } finally {
      this.listeners.delete(id);
    }
  }

  /** Sends text to a running program's stdin; `eof` closes it after. */
  stdin(id: string, data: string, eof = false): void {
    this.socket.send(JSON.stringify({ type: 'stdin', id, data }));
    if (eof) this.socket.send(JSON.stringify({ type: 'stdin_eof', id }));
  }

  /** Cancels a run (interrupts a session cell). */
  cancel(id: string): void {
    this.socket.send(JSON.stringify({ type: 'cancel', id }));
  }

  close(): void {
    this.socket.close(1000);
  }
}
