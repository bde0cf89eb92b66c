import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

// The preload's own HTTP/1.1 client (extension/after-response.mjs) against an Extensions API that answers the way any
// HTTP/1.1 server may: headers in any case, answers in pieces, chunked bodies with extensions and trailers, bodies
// that end with the connection, connections closed between requests. test/runtime/lambda-runtime.ts's Extensions
// API (node:http) and AWS's emulator (Go's net/http) each use a few of these ways only.

const PRELOAD = resolve(__dirname, '../../extension/after-response.mjs');
const ID = 'c0ffee00-0000-4000-8000-000000000001';

interface Received {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** Date.now() when the request had fully arrived, and when its answer began to be sent. */
  at: number;
  answeredAt?: number;
}

/** What the server does with each request, in order: the bytes to send (in pieces, with a pause between) and whether to close after. */
type Answer = { pieces: string[]; close?: boolean; reset?: boolean; delayMs?: number } | 'close-at-once';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise<void>((done) => server.close(() => done()));
});

/** A raw TCP server on 127.0.0.1 that reads HTTP/1.1 requests and answers from `answers`, one per request. */
async function hostileApi(answers: Answer[]) {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', async (data) => {
      buffered += data.toString('latin1');
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const [requestLine, ...lines] = buffered.slice(0, headEnd).split('\r\n');
        const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
        const length = Number(headers['content-length'] ?? 0);
        if (buffered.length < headEnd + 4 + length) return;
        const [method, path] = requestLine.split(' ');
        const request: Received = { method, path, headers, body: buffered.slice(headEnd + 4, headEnd + 4 + length), at: Date.now() };
        received.push(request);
        buffered = buffered.slice(headEnd + 4 + length);
        // A request on a connection this server is closing goes unanswered, as a real server's would.
        if (socket.writableEnded || socket.destroyed) return;
        const answer = answers.shift();
        if (!answer) return; // Left waiting: the test ends the process.
        if (answer === 'close-at-once') {
          socket.destroy();
          return;
        }
        if (answer.delayMs) await new Promise((done) => setTimeout(done, answer.delayMs));
        request.answeredAt = Date.now();
        for (const [index, piece] of answer.pieces.entries()) {
          if (index > 0) await new Promise((done) => setTimeout(done, 15));
          socket.write(piece);
        }
        if (answer.close) socket.end();
        if (answer.reset) setTimeout(() => socket.resetAndDestroy(), 15);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    connections: () => connections,
    destroyAll: () => sockets.forEach((socket) => socket.destroy()),
  };
}

/**
 * Runs a process with the preload and an INVOKE hook that prints each event it gets, until `events` have arrived
 * (or the extension stopped): what it printed, one JSON object per line.
 */
function runPreload(
  address: string,
  events: number,
  connectAfterMs?: number,
  lifeMs = 8_000,
  readEventsAtMs?: number[],
  timing = false,
): Promise<{ lines: Record<string, unknown>[]; code: number | null }> {
  // With connectAfterMs, the hook is set that late, then said as the kit says it (its telemetry starting with the
  // first traced invocation, after that invocation's event may have arrived). With readEventsAtMs, every event is
  // held (as the kit holds them while its wrappers run the handler), and the kit reads one at each of those times.
  // The preload only waits for its registration to be written: Lambda's answer arrives while the program loads.
  const script = `
    const link = globalThis[Symbol.for('traced-lambda.after-response')];
    const startedAt = Date.now();
    const statusAtStart = link.status;
    for (let wait = 0; link.status === 'registering' && wait < 5000; wait++) await new Promise((next) => setTimeout(next, 1));
    console.log(JSON.stringify({ status: link.status, reason: link.reason, ...(${timing} ? { startedAt, statusAtStart } : {}) }));
    if (link.status !== 'registered') process.exit(0);
    let seen = 0;
    const readsAt = ${JSON.stringify(readEventsAtMs ?? [])};
    let reads = 0;
    if (readsAt.length > 0) link.holdEvent = () => true;
    for (const at of readsAt) {
      setTimeout(() => {
        reads++;
        link.readEvent();
      }, at);
    }
    const onInvoke = async (event) => {
      const line = { requestId: event.requestId, deadlineMs: event.deadlineMs };
      if (readsAt.length > 0) line.reads = reads;
      console.log(JSON.stringify(line));
      if (++seen === ${events}) process.exit(0);
    };
    const connect = () => {
      link.onInvoke = onInvoke;
      link.connected?.();
    };
    if (${connectAfterMs ?? -1} < 0) connect();
    else setTimeout(connect, ${connectAfterMs ?? 0});
    link.onStopped = () => {
      console.log(JSON.stringify({ stopped: link.reason }));
      setTimeout(() => process.exit(0), 500);
    };
    setTimeout(() => process.exit(3), ${lifeMs});
  `;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', PRELOAD, '-e', script], {
      env: { PATH: process.env.PATH, AWS_LAMBDA_RUNTIME_API: address },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (data) => (stdout += data));
    child.on('error', fail);
    child.on('exit', (code) =>
      done({
        lines: stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line)),
        code,
      }),
    );
  });
}

const event = (requestId: string) => JSON.stringify({ eventType: 'INVOKE', deadlineMs: 1_900_000_000_000, requestId, invokedFunctionArn: 'arn', tracing: {} });
const chunked = (body: string) =>
  `${(body.length - 10).toString(16)};ext=1\r\n${body.slice(0, -10)}\r\n${(10).toString(16).toUpperCase()}\r\n${body.slice(-10)}\r\n0\r\nX-Trailer: t\r\n\r\n`;

describe("the preload's Extensions API client", () => {
  it('reads answers in pieces, chunked, in any header case, until the connection ends, and reconnects when the server closes', async () => {
    const registered = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nLAMBDA-EXTENSION-IDENTIFIER: ${ID}\r\nTransfer-Encoding: chunked\r\nconnection: Close\r\n\r\n`;
    const body = JSON.stringify({ functionName: 'f', functionVersion: '$LATEST', handler: 'h' });
    const one = event('one');
    const two = event('two');
    const three = event('three');
    const four = event('four');
    const api = await hostileApi([
      // Registration: chunked, the head split mid-header, the body's chunks in pieces, the connection closed after.
      { pieces: [registered.slice(0, 40), registered.slice(40), chunked(body).slice(0, 7), chunked(body).slice(7)], close: true },
      // Byte-split head, Content-Length in capitals, the body in two pieces.
      { pieces: [`HTTP/1.1 200 OK\r\nCONTENT-LENGTH: ${one.length}\r\n`, `Lambda-Extension-Event-Identifier: e1\r\n\r\n${one.slice(0, 5)}`, one.slice(5)] },
      // Chunked, with an interim 100 Continue before it.
      { pieces: [`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n${chunked(two)}`] },
      // Neither a length nor chunks: the body ends with the connection.
      { pieces: [`HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n${three}`], close: true },
      // On a new connection: the connection dropped before any answer, then (after the client's retry) an answer.
      'close-at-once',
      { pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${four.length}\r\n\r\n${four}`] },
    ]);

    const { lines, code } = await runPreload(api.address, 4);

    expect(lines[0]).toEqual({ status: 'registered', reason: '' });
    expect(lines.slice(1)).toEqual(['one', 'two', 'three', 'four'].map((requestId) => ({ requestId, deadlineMs: 1_900_000_000_000 })));
    expect(code).toBe(0);
    expect(api.received[0]).toMatchObject({ method: 'POST', path: '/2020-01-01/extension/register', body: '{"events":["INVOKE"]}' });
    expect(api.received[0].headers).toMatchObject({ 'lambda-extension-name': 'traced-lambda-after-response', 'content-length': '21' });
    for (const request of api.received.slice(1)) {
      expect(request).toMatchObject({ method: 'GET', path: '/2020-01-01/extension/event/next' });
      expect(request.headers['lambda-extension-identifier']).toBe(ID);
      expect(request.headers.host).toBe(api.address);
    }
    // register, then one per closed connection: after register, after the third event, after the dropped one.
    expect(api.connections()).toBe(4);
  });

  it('holds the first event for the kit to connect, and goes on without it after a second', async () => {
    const registered = `HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: ${ID}\r\nContent-Length: 0\r\n\r\n`;
    const answer = (body: string) => ({ pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`] });
    // The kit connects 300 ms after the first event arrived: that event still reaches it.
    const late = await hostileApi([{ pieces: [registered] }, answer(event('first')), answer(event('second'))]);
    const { lines } = await runPreload(late.address, 2, 300);
    expect(lines.slice(1).map((line) => line.requestId)).toEqual(['first', 'second']);

    // No kit at all (a handler that does not use it): the first event is let go after the grace, the next at once.
    const none = await hostileApi([{ pieces: [registered] }, answer(event('first')), answer(event('second'))]);
    const started = Date.now();
    const run = runPreload(none.address, 1, 60_000, 2_500);
    const nextAsked: number[] = [];
    for (let wait = 0; wait < 400 && nextAsked.length < 3; wait++) {
      await new Promise((done) => setTimeout(done, 10));
      while (nextAsked.length < none.received.length - 1) nextAsked.push(Date.now() - started);
    }
    expect(nextAsked).toHaveLength(3);
    expect(nextAsked[1] - nextAsked[0]).toBeGreaterThanOrEqual(900);
    expect(nextAsked[2] - nextAsked[1]).toBeLessThan(500);
    expect((await run).lines.slice(1)).toEqual([]);
  }, 15_000);

  it('acts on a held event only once the kit reads it, even when its connection has ended or broken meanwhile', async () => {
    const registered = `HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: ${ID}\r\nContent-Length: 0\r\n\r\n`;
    const answer = (body: string) => ({ pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`] });
    const two = event('two');
    const api = await hostileApi([
      { pieces: [registered] },
      // Asked for before the kit holds events (as the first event is, before the kit's first invocation).
      answer(event('one')),
      // In pieces, its body ending with the connection: all of it arrives, and the connection ends, while it is held.
      { pieces: [`HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n${two.slice(0, 9)}`, two.slice(9)], close: true },
      // Whole, then the connection reset while it is held.
      { ...answer(event('three')), reset: true },
      answer(event('four')),
    ]);

    const { lines, code } = await runPreload(api.address, 4, undefined, 1_500, [400, 800]);

    // Each held event reached the kit once it was read (the connection's end, or its reset, did not fail it), and
    // the extension asked for the next one on a new connection; the fourth, never read, never reached the kit.
    expect(lines.slice(1)).toEqual([
      { requestId: 'one', deadlineMs: 1_900_000_000_000, reads: 0 },
      { requestId: 'two', deadlineMs: 1_900_000_000_000, reads: 1 },
      { requestId: 'three', deadlineMs: 1_900_000_000_000, reads: 2 },
    ]);
    expect(api.received.map((request) => request.path.replace('/2020-01-01/extension', ''))).toEqual([
      '/register',
      '/event/next',
      '/event/next',
      '/event/next',
      '/event/next',
    ]);
    expect(api.connections()).toBe(3);
    expect(code).toBe(3);
  });

  it('stops, and reports the error to the Extensions API, when event requests keep failing', async () => {
    const api = await hostileApi([
      { pieces: [`HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: ${ID}\r\nContent-Length: 0\r\n\r\n`] },
      { pieces: ['HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n'] },
      { pieces: ['HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n'] },
      { pieces: ['SSH-2.0-OpenSSH\r\n\r\n'] },
      { pieces: ['HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n'], close: true },
    ]);
    const { lines } = await runPreload(api.address, 1);
    expect(lines[0]).toEqual({ status: 'registered', reason: '' });
    expect(String(lines[1].stopped)).toMatch(/^the Lambda Extensions API stopped answering: not an HTTP\/1\.x answer/);
    expect(api.received.map((request) => request.path.replace('/2020-01-01/extension', ''))).toEqual([
      '/register',
      '/event/next',
      '/event/next',
      '/event/next',
      '/exit/error',
    ]);
    expect(api.received[4].headers['lambda-extension-function-error-type']).toBe('Extension.EventsUnavailable');
  }, 15_000);

  it('lets the program start once the registration is sent, without waiting for its answer', async () => {
    const registered = `HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: ${ID}\r\nContent-Length: 0\r\n\r\n`;
    const one = event('one');
    const api = await hostileApi([{ pieces: [registered], delayMs: 300 }, { pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${one.length}\r\n\r\n${one}`] }]);

    const { lines } = await runPreload(api.address, 1, undefined, 8_000, undefined, true);

    // The registration had reached the Extensions API before the program began (as it must before the runtime's
    // first request for an event), and the program began before the answer came; the extension then served events.
    const [status] = lines as [{ status: string; startedAt: number; statusAtStart: string }];
    expect(status).toMatchObject({ status: 'registered', statusAtStart: 'registering' });
    expect(api.received[0]).toMatchObject({ path: '/2020-01-01/extension/register' });
    expect(api.received[0].at).toBeLessThanOrEqual(status.startedAt);
    expect(status.startedAt).toBeLessThan(api.received[0].answeredAt!);
    expect(lines[1]).toEqual({ requestId: 'one', deadlineMs: 1_900_000_000_000 });
  });

  it('fails the registration on a refusal (403), and on an answer that never ends, within its limit', async () => {
    const error = JSON.stringify({ errorMessage: 'No events allowed for internal extensions', errorType: 'Extension.InvalidEventType' });
    const refused = await hostileApi([
      { pieces: [`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${error.length}\r\n\r\n${error}`] },
    ]);
    const { lines } = await runPreload(refused.address, 1);
    expect(lines[0]).toEqual({
      status: 'failed',
      reason:
        'could not register with the Lambda Extensions API: registration refused (403 Extension.InvalidEventType: No events allowed for internal extensions)',
    });

    const stalled = await hostileApi([{ pieces: ['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{'] }]);
    const started = Date.now();
    const { lines: stalledLines } = await runPreload(stalled.address, 1);
    expect(stalledLines[0]).toEqual({ status: 'failed', reason: 'could not register with the Lambda Extensions API: no answer within 2000 ms' });
    expect(Date.now() - started).toBeLessThan(7_000);
  }, 15_000);
});
