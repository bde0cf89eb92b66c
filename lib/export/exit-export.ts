// The last export, from Node.js's `exit` event (`process.exit()` called by the function's code): no asynchronous
// work runs after that event, so the request is sent by a worker thread while this thread waits for it, blocked
// on an Atomics.wait with a deadline. Only here does the kit ever block: the process is ending anyway.

/** One request, ready to send: everything computed beforehand (no signing or secret lookup can happen here). */
export interface PreparedRequest {
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  /** How many spans the body holds. */
  spanCount: number;
}

/**
 * The worker's code: posts each body in turn, adding the spans of each 2xx answer to state[1], then sets state[0] and wakes
 * the waiting thread. Plain JavaScript evaluated by the worker, so that it needs no file of its own in the package.
 */
const SENDER = `
const { workerData } = require('node:worker_threads');
const { requests, state, timeoutMs } = workerData;
const send = ({ url, headers, body }) => new Promise((resolve) => {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? require('node:https') : require('node:http');
  const request = transport.request(target, { method: 'POST', headers: { ...headers, 'content-length': String(body.byteLength) } }, (response) => {
    response.resume();
    response.on('end', () => resolve(response.statusCode >= 200 && response.statusCode < 300));
    response.on('error', () => resolve(false));
  });
  request.setTimeout(timeoutMs, () => request.destroy());
  request.on('error', () => resolve(false));
  request.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
});
(async () => {
  for (const request of requests) if (await send(request)) Atomics.add(state, 1, request.spanCount);
})().finally(() => { Atomics.store(state, 0, 1); Atomics.notify(state, 0); });
`;

/**
 * Sends `requests` one after another from a worker thread and blocks this thread until they are answered or
 * `maxWaitMs` has passed (the worker's start included, ~50 ms). Returns how many spans were in requests answered
 * with a 2xx status; never throws.
 */
export function sendBeforeExit(requests: PreparedRequest[], maxWaitMs: number): number {
  if (requests.length === 0 || maxWaitMs <= 0) return 0;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
    const state = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(SENDER, { eval: true, workerData: { requests, state, timeoutMs: maxWaitMs } });
    Atomics.wait(state, 0, 0, maxWaitMs);
    void worker.terminate();
    return Atomics.load(state, 1);
  } catch {
    return 0;
  }
}
