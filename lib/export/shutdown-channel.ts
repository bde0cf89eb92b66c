// Shutdown on Lambda Managed Instances: the runtime client runs the handler in worker threads, and a signal reaches
// only the main thread, where extension/after-response.mjs listens for SIGTERM. It asks every worker to export what
// it holds, waits for their answers (until a deadline within Lambda's shutdown time), then lets the signal end the
// process. Both sides speak this protocol; extension/after-response.mjs repeats its names and numbers.
//
// A worker announces itself once, over a BroadcastChannel, with a small shared memory (its drain request): the main
// thread asks and the worker answers there, woken by Atomics.notify. Not over the channel: a thread's first
// channel message makes Node.js load its MessageEvent class (undici, ~80 ms of CPU), so a worker that had never
// received one read the request 60–250 ms after the SIGTERM on a loaded machine, and its export then missed the
// SIGKILL. Atomics.waitAsync wakes it within a few milliseconds, and never keeps it alive.
import { BroadcastChannel } from 'node:worker_threads';

/** The channel's name, the same in extension/after-response.mjs. */
export const SHUTDOWN_CHANNEL = 'traced-lambda.shutdown';

/** `ready`: a worker holds spans from now on, and is asked through `request` (a `DrainRequest`'s memory). */
export interface ShutdownReady {
  type: 'ready';
  request: SharedArrayBuffer;
}

/** What a drain request's state says (an Int32 at byte 0); the deadline (epoch ms) is a Float64 at byte 8. */
export const DRAIN_STATE = {
  /** The worker holds spans and waits to be asked. */
  waiting: 0,
  /** The main thread asks: export everything before the deadline. */
  asked: 1,
  /** The worker has exported (or could not before the deadline). */
  answered: 2,
  /** The telemetry set-up that held the spans was replaced: nothing to ask. */
  closed: 3,
} as const;

const REQUEST_BYTES = 16;
const DEADLINE_OFFSET = 8;

/**
 * This thread's held spans are exported by `drain` when the environment shuts down, until `close` is called (the
 * telemetry set-up that holds them is replaced). `drain` is given what is left until the main thread's deadline.
 */
export function drainOnShutdown(drain: (maxWaitMs: number) => Promise<void>): { close(): void } {
  const request = new SharedArrayBuffer(REQUEST_BYTES);
  const state = new Int32Array(request, 0, 1);
  const deadline = new Float64Array(request, DEADLINE_OFFSET, 1);
  const announce = new BroadcastChannel(SHUTDOWN_CHANNEL);
  announce.postMessage({ type: 'ready', request } satisfies ShutdownReady);
  // Delivered to the main thread's channel as it is posted: this one never has to receive anything.
  announce.close();
  const answer = () => {
    Atomics.store(state, 0, DRAIN_STATE.answered);
    Atomics.notify(state, 0);
  };
  // Not a handle: a worker waiting for a request that never comes still exits.
  const asked = Atomics.waitAsync(state, 0, DRAIN_STATE.waiting);
  void Promise.resolve(asked.value).then(() => {
    if (Atomics.load(state, 0) !== DRAIN_STATE.asked) return;
    void drain(Math.max(0, deadline[0] - Date.now()))
      .catch(() => undefined)
      .then(answer);
  });
  return {
    close() {
      if (Atomics.compareExchange(state, 0, DRAIN_STATE.waiting, DRAIN_STATE.closed) === DRAIN_STATE.waiting) Atomics.notify(state, 0);
    },
  };
}
