// @ts-check
/**
 * Registers the function's own process as an internal Lambda extension, so that spans are exported after the
 * response instead of before it. Loaded by Node.js before the runtime starts, from NODE_OPTIONS
 * (`--import ./extension/after-response.mjs`, set in serverless.yml; the file travels in every package).
 *
 * Why a preload: Lambda accepts an extension only during init, before the runtime asks for its first event, and
 * the runtime asks as soon as the handler module has loaded. A module given to `--import` is evaluated, top-level
 * await included, before the runtime's own code runs, so the registration is always in time.
 *
 * What Lambda then does: it freezes the sandbox only when the runtime *and* every extension have asked for their
 * next event. The runtime posts the response as soon as the handler returns; this extension asks for its next
 * event only after the kit (lib/after-response.ts, bundled with the handler) has exported that invocation's
 * spans. The response does not wait for the export, and the export always finishes before the sandbox freezes.
 *
 * Nothing here depends on the kit: when no traced handler is loaded, each event is acknowledged at once. Outside
 * Lambda (no AWS_LAMBDA_RUNTIME_API), or with TRACED_LAMBDA_EXPORT_AFTER_RESPONSE=false, it registers nothing,
 * and the kit exports before each response returns, as it does wherever this file is not loaded.
 */
import { createRequire } from 'node:module';

// node:http through require, as the runtime client loads it: an ES module import of node:http builds its
// namespace from every export, lazy ones included, which costs ~15 ms of cold start on Node.js 24 (~2 ms this way).
/** @type {typeof import('node:http')} */
const { Agent, request } = createRequire(import.meta.url)('node:http');

/** The name Lambda lists the extension under (an internal extension's name is free). */
const NAME = 'traced-lambda-after-response';
/** Where the kit finds this extension: a registry symbol, the same in every copy of the kit. */
const LINK = Symbol.for('traced-lambda.after-response');
const BASE = '/2020-01-01/extension';
/** Registration is part of the function's cold start: never wait longer than this for it. */
const REGISTER_TIMEOUT_MS = 2_000;
/** The channel Managed Instances' workers are asked to export on at shutdown (lib/shutdown-channel.ts). */
const SHUTDOWN_CHANNEL = 'traced-lambda.shutdown';
/** Lambda ends the environment ~500 ms after SIGTERM (600 ms in AWS's emulator): the workers' exports fit in this. */
const SHUTDOWN_BUDGET_MS = 400;
/** Kept back from a worker's export, for its answer to reach the main thread. */
const SHUTDOWN_MARGIN_MS = 30;
/** Event requests that may fail in a row (a broken connection) before the extension reports itself failed. */
const NEXT_ATTEMPTS = 3;

/**
 * @typedef {{ eventType: 'INVOKE', requestId: string, deadlineMs: number, invokedFunctionArn?: string }} InvokeEvent
 * @typedef {object} AfterResponseLink
 * @property {'registered' | 'off' | 'failed' | 'stopped'} status `registered` while events are served.
 * @property {string} reason Why the status is not `registered`.
 * @property {string} name The extension's name.
 * @property {((event: InvokeEvent) => Promise<void>) | undefined} onInvoke Set by the kit: resolves once that
 *   invocation's spans are exported (or could not be); the extension then asks for its next event.
 * @property {(() => void) | undefined} onStopped Set by the kit: called if events stop being served.
 * @property {(() => boolean) | undefined} holdEvent Set by the kit once its wrappers run the handler, asked as each
 *   event request goes out: true leaves the event unread on its socket until the kit calls `readEvent` (after the
 *   runtime has posted that invocation's response), so that reading and parsing it never delays the handler or
 *   its response. The kit calls `readEvent` whenever an invocation ends.
 * @property {() => void} readEvent Lets the extension read the event waiting on its socket, if any.
 */

/** @type {AfterResponseLink} */
const link = { status: 'off', reason: '', name: NAME, onInvoke: undefined, onStopped: undefined, holdEvent: undefined, readEvent: () => undefined };
/** @type {Record<symbol, unknown>} */ (/** @type {unknown} */ (globalThis))[LINK] = link;

const runtimeApi = process.env.AWS_LAMBDA_RUNTIME_API;
if (!runtimeApi) {
  link.reason = 'no Lambda Extensions API here (AWS_LAMBDA_RUNTIME_API is not set)';
} else if (/^(false|0|no|off)$/i.test(process.env.TRACED_LAMBDA_EXPORT_AFTER_RESPONSE ?? '')) {
  link.reason = 'TRACED_LAMBDA_EXPORT_AFTER_RESPONSE is false';
} else if (process.env.AWS_LAMBDA_INITIALIZATION_TYPE === 'lambda-managed-instances') {
  await managedInstances(extensionsApi(runtimeApi));
} else {
  const call = extensionsApi(runtimeApi);

  try {
    const answer = await call(
      'POST',
      '/register',
      { 'Lambda-Extension-Name': NAME, 'Content-Type': 'application/json' },
      // Lambda gives SHUTDOWN to external extensions only; the runtime process gets SIGTERM instead.
      JSON.stringify({ events: ['INVOKE'] }),
      REGISTER_TIMEOUT_MS,
    );
    const id = answer.headers['lambda-extension-identifier'];
    if (answer.status !== 200 || typeof id !== 'string' || id === '') {
      throw new Error(`registration refused (${answer.status}${describeError(answer.body)})`);
    }
    link.status = 'registered';
    void serve(id);
  } catch (error) {
    link.status = 'failed';
    link.reason = `could not register with the Lambda Extensions API: ${error instanceof Error ? error.message : String(error)}`;
  }

  /**
   * The extension's loop: wait for an event, let the kit export the invocation's spans, ask for the next one.
   * @param {string} id
   */
  async function serve(id) {
    const headers = { 'Lambda-Extension-Identifier': id };
    for (let failures = 0; ;) {
      /** @type {{ eventType?: string } & Partial<InvokeEvent>} */
      let event;
      try {
        const answer = await call('GET', '/event/next', headers, undefined, undefined, true);
        if (answer.status !== 200) throw new Error(`event/next answered ${answer.status}${describeError(answer.body)}`);
        event = JSON.parse(answer.body);
        failures = 0;
      } catch (error) {
        if (++failures < NEXT_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 20 * failures));
          continue;
        }
        // Lambda would wait for this extension at every invocation: tell it, and let the kit export in-invocation.
        link.status = 'stopped';
        link.reason = `the Lambda Extensions API stopped answering: ${error instanceof Error ? error.message : String(error)}`;
        link.onStopped?.();
        await call(
          'POST',
          '/exit/error',
          { ...headers, 'Lambda-Extension-Function-Error-Type': 'Extension.EventsUnavailable' },
          undefined,
          REGISTER_TIMEOUT_MS,
        ).catch(() => undefined);
        return;
      }
      if (event.eventType === 'INVOKE' && link.onInvoke) {
        try {
          await link.onInvoke(/** @type {InvokeEvent} */ (event));
        } catch {
          // The kit's hook does not throw; whatever happens, the next event must still be asked for.
        }
      }
    }
  }
}

/**
 * The Extensions API's client: one kept-alive connection, which the long-polled event request reuses at every
 * invocation.
 * @param {string} address AWS_LAMBDA_RUNTIME_API
 */
function extensionsApi(address) {
  const [host, port] = splitHostPort(address);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  /**
   * @param {string} method
   * @param {string} path
   * @param {Record<string, string>} headers
   * @param {string} [body]
   * @param {number} [timeoutMs] no limit when absent (the event request waits as long as the sandbox is idle)
   * @param {boolean} [hold] leave the answer unread on the socket until `link.readEvent()`, if `link.holdEvent()`
   * @param {boolean} [detached] the request never keeps the process alive (an event that never comes)
   * @returns {Promise<{ status: number, headers: import('node:http').IncomingHttpHeaders, body: string }>}
   */
  const call = (method, path, headers, body, timeoutMs, hold = false, detached = false) =>
    new Promise((resolve, reject) => {
      const outgoing = request({ host, port, method, path: BASE + path, headers, agent }, (incoming) => {
        /** @type {Buffer[]} */
        const chunks = [];
        incoming.on('data', (chunk) => chunks.push(chunk));
        incoming.on('end', () => resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, body: Buffer.concat(chunks).toString('utf8') }));
        incoming.on('error', reject);
      });
      outgoing.on('error', reject);
      if (detached) outgoing.once('socket', (socket) => socket.unref());
      if (hold) {
        // Paused once the request is on its socket: what Lambda sends waits in the socket until it is asked for.
        outgoing.once('socket', (socket) => {
          if (!link.holdEvent?.()) return;
          socket.pause();
          link.readEvent = () => {
            link.readEvent = () => undefined;
            socket.resume();
          };
        });
      }
      if (timeoutMs) outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      outgoing.end(body);
    });
  return call;
}

/**
 * Lambda Managed Instances: the runtime client runs the handler in worker threads, several invocations at once,
 * and the environment is never frozen, so each worker's kit exports in the background (lib/export-scheduler.ts) and
 * no event is asked for: Lambda refuses an internal extension that asks for any ("No events allowed for internal
 * extensions", aws-lambda-runtime-interface-emulator, internal/lambda-managed-instances). This file runs once in
 * the main thread (which runs no handler) and once in each worker. The main thread registers with no events, which
 * is what makes Lambda end the environment with SIGTERM (not SIGKILL at once); a worker never sees the signal
 * (Node.js delivers signals to the main thread only), so the main thread asks every worker that holds spans to
 * export them (lib/shutdown-channel.ts) and lets the signal end the process once they have answered.
 * @param {ReturnType<typeof extensionsApi>} call
 */
async function managedInstances(call) {
  const { isMainThread, BroadcastChannel } = createRequire(import.meta.url)('node:worker_threads');
  link.reason = 'Lambda Managed Instances: each worker thread exports its spans in the background';
  if (!isMainThread) return;
  // Each worker's waiting /next takes one of libuv's threads (the runtime client's native call), 4 by default: with
  // as many workers, every file read and DNS lookup in the process (an export's, the handler's) waits for an event
  // to arrive. Read when the pool first starts, after this file: one thread per worker, and the usual 4 besides.
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = String(Math.min(1024, workerCount() + 4));
  drainWorkersOnSigterm(new BroadcastChannel(SHUTDOWN_CHANNEL));
  try {
    const answer = await call(
      'POST',
      '/register',
      { 'Lambda-Extension-Name': NAME, 'Content-Type': 'application/json' },
      JSON.stringify({ events: [] }),
      REGISTER_TIMEOUT_MS,
    );
    const id = answer.headers['lambda-extension-identifier'];
    if (answer.status !== 200 || typeof id !== 'string' || id === '') {
      throw new Error(`registration refused (${answer.status}${describeError(answer.body)})`);
    }
    // Lambda waits for every registered extension to ask for its next event before init is over; none comes.
    void call('GET', '/event/next', { 'Lambda-Extension-Identifier': id }, undefined, undefined, false, true).catch(() => undefined);
  } catch (error) {
    console.warn(
      `traced-lambda: could not register with the Lambda Extensions API (${error instanceof Error ? error.message : String(error)}); spans a worker holds at shutdown may be lost.`,
    );
  }
}

/** The runtime client's worker count: AWS_LAMBDA_NODEJS_WORKER_COUNT, else 8 per vCPU as it counts them (at least 1). */
function workerCount() {
  const set = Number.parseInt(process.env.AWS_LAMBDA_NODEJS_WORKER_COUNT ?? '', 10);
  if (Number.isInteger(set) && set > 0) return set;
  return 8 * Math.max(1, createRequire(import.meta.url)('node:os').availableParallelism());
}

/**
 * At SIGTERM: every worker that said it holds spans (`ready`) is asked to export them (`drain`); once all have
 * answered (`drained`), or the shutdown budget is spent, the listener takes itself off and the signal ends the
 * process as it would have (process.exit would wait for the workers' native calls).
 * @param {import('node:worker_threads').BroadcastChannel} channel
 */
function drainWorkersOnSigterm(channel) {
  channel.unref();
  let ready = 0;
  let drained = 0;
  /** @type {() => void} */
  let answered = () => undefined;
  channel.onmessage = (/** @type {any} */ event) => {
    const type = event?.data?.type;
    if (type === 'ready') ready++;
    else if (type === 'drained') {
      drained++;
      answered();
    }
  };
  process.on('SIGTERM', function exportBeforeExit() {
    channel.postMessage({ type: 'drain', budgetMs: SHUTDOWN_BUDGET_MS - SHUTDOWN_MARGIN_MS });
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const allDrained = new Promise((resolve) => {
      answered = () => {
        if (drained >= ready) resolve(undefined);
      };
      answered();
    });
    const budget = new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_BUDGET_MS)));
    void Promise.race([allDrained, budget]).then(() => {
      clearTimeout(timer);
      channel.close();
      process.removeListener('SIGTERM', exportBeforeExit);
      if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
    });
  });
}

/**
 * `127.0.0.1:9001` → ['127.0.0.1', 9001]
 * @param {string} address
 * @returns {[string, number]}
 */
function splitHostPort(address) {
  const colon = address.lastIndexOf(':');
  return colon > 0 ? [address.slice(0, colon), Number(address.slice(colon + 1))] : [address, 80];
}

/** @param {string} body */
function describeError(body) {
  try {
    const { errorType, errorMessage } = JSON.parse(body);
    return errorType ? ` ${errorType}${errorMessage ? `: ${errorMessage}` : ''}` : '';
  } catch {
    return '';
  }
}
