// @ts-check
/**
 * Registers the function's own process as an internal Lambda extension, so that spans are exported after the
 * response instead of before it. Loaded by Node.js before the runtime starts, from NODE_OPTIONS
 * (`--import ./extension/after-response.mjs`, set in serverless.yml; the file travels in every package).
 *
 * Why a preload: Lambda accepts an extension only during init, before the runtime asks for its first event, and
 * the runtime asks as soon as the handler module has loaded. A module given to `--import` is evaluated, top-level
 * await included, before the runtime's own code runs: it waits here until the registration request is written to
 * the Extensions API's connection, so the request always reaches Lambda before the runtime's first request for an
 * event. The answer is not waited for: it arrives while the runtime and the handler module load.
 *
 * What Lambda then does: it freezes the sandbox only when the runtime *and* every extension have asked for their
 * next event. The runtime posts the response as soon as the handler returns; this extension asks for its next
 * event only after the kit (lib/export/after-response.ts, bundled with the handler) has exported that invocation's
 * spans. The response does not wait for the export, and the export always finishes before the sandbox freezes.
 *
 * Nothing here depends on the kit: when no traced handler is loaded, the first event waits at most a second for
 * the kit to connect (it does when its first traced invocation starts), and events are then acknowledged at once. Outside
 * Lambda (no AWS_LAMBDA_RUNTIME_API), or with TRACED_LAMBDA_EXPORT_AFTER_RESPONSE=false, it registers nothing,
 * and the kit exports before each response returns, as it does wherever this file is not loaded.
 */
// Built-ins through process.getBuiltinModule, not `import`: an ES module import of a built-in builds its namespace
// from every export, lazy ones included (node:http's: ~15 ms of cold start on Node.js 24). Not node:http at all:
// see extensionsApi.
const { connect } = process.getBuiltinModule('node:net');

/** The name Lambda lists the extension under (an internal extension's name is free). */
const NAME = 'traced-lambda-after-response';
/** Where the kit finds this extension: a registry symbol, the same in every copy of the kit. */
const LINK = Symbol.for('traced-lambda.after-response');
const BASE = '/2020-01-01/extension';
/** Registration is part of the function's cold start: never wait longer than this for it. */
const REGISTER_TIMEOUT_MS = 2_000;
/** The channel Managed Instances' workers announce their drain requests on (lib/export/shutdown-channel.ts). */
const SHUTDOWN_CHANNEL = 'traced-lambda.shutdown';
/** A drain request's states, and where its deadline is: lib/export/shutdown-channel.ts's DRAIN_STATE. */
const DRAIN_STATE = { waiting: 0, asked: 1, answered: 2, closed: 3 };
const DEADLINE_OFFSET = 8;
/**
 * How long after SIGTERM the main thread lets the signal end the process at the latest. AWS's Managed Instances
 * emulator SIGKILLs the runtime 600 ms after SIGTERM (internal/lambda-managed-instances/rapid/shutdown.go,
 * defaultRuntimeShutdownTimeout); Lambda documents nothing for Managed Instances (500 ms for a runtime with an
 * internal extension on on-demand Lambda). Kept back from 600: the time for this thread to wake and end the process
 * on a loaded machine. Waiting past the real limit would lose nothing that stopping sooner saves: SIGKILL then ends
 * the process instead, with the same spans exported.
 */
const SHUTDOWN_BUDGET_MS = 550;
/** Kept back from the workers' deadline, for their answers to reach the main thread. */
const SHUTDOWN_MARGIN_MS = 30;
/** An answer's head longer than this is not the Extensions API's. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Event requests that may fail in a row (a broken connection) before the extension reports itself failed. */
const NEXT_ATTEMPTS = 3;
/** How long an INVOKE event waits for the kit to connect before it is taken for a function that does not use it. */
const KIT_GRACE_MS = 1_000;
/** Kept back from the invocation's deadline while waiting for the kit. */
const KIT_DEADLINE_MARGIN_MS = 50;

/**
 * @typedef {{ eventType: 'INVOKE', requestId: string, deadlineMs: number, invokedFunctionArn?: string }} InvokeEvent
 * @typedef {object} AfterResponseLink
 * @property {'registering' | 'registered' | 'off' | 'failed' | 'stopped'} status `registered` while events are served;
 *   `registering` until Lambda has answered the registration (events are served once it has).
 * @property {Promise<void> | undefined} settled While registering: resolves once Lambda has answered (and the first
 *   event has been asked for, when it accepted).
 * @property {string} reason Why the status is not `registered`.
 * @property {string} name The extension's name.
 * @property {((event: InvokeEvent) => Promise<void>) | undefined} onInvoke Set by the kit: resolves once that
 *   invocation's spans are exported (or could not be); the extension then asks for its next event.
 * @property {(() => void) | undefined} onStopped Set by the kit: called if events stop being served.
 * @property {(() => boolean) | undefined} holdEvent Set by the kit once its wrappers run the handler, asked as each
 *   event request goes out: true holds the event as it arrives, unparsed, until the kit calls `readEvent` (after
 *   the runtime has posted that invocation's response), so that parsing it and acting on it never delay the
 *   handler or its response. The kit calls `readEvent` whenever an invocation ends.
 * @property {() => void} readEvent Lets the extension act on the event it holds, if any (at once, or as it arrives).
 * @property {(() => void) | undefined} connected Set while an INVOKE event waits for the kit: the kit calls it once
 *   it has set `onInvoke` (its telemetry starts with the first traced invocation, which may come after the event).
 */

/** @type {AfterResponseLink} */
const link = {
  status: 'off',
  reason: '',
  settled: undefined,
  name: NAME,
  onInvoke: undefined,
  onStopped: undefined,
  holdEvent: undefined,
  readEvent: () => undefined,
  connected: undefined,
};
/** @type {Record<symbol, unknown>} */ (/** @type {unknown} */ (globalThis))[LINK] = link;

const runtimeApi = process.env.AWS_LAMBDA_RUNTIME_API;
if (!runtimeApi) {
  link.reason = 'no Lambda Extensions API here (AWS_LAMBDA_RUNTIME_API is not set)';
} else if (/^(false|0|no|off)$/i.test(process.env.TRACED_LAMBDA_EXPORT_AFTER_RESPONSE ?? '')) {
  link.reason = 'TRACED_LAMBDA_EXPORT_AFTER_RESPONSE is false';
} else if (process.env.AWS_LAMBDA_INITIALIZATION_TYPE === 'lambda-managed-instances') {
  await managedInstances(extensionsApi(runtimeApi));
} else {
  const api = extensionsApi(runtimeApi);

  // Lambda gives SHUTDOWN to external extensions only; the runtime process gets SIGTERM instead.
  link.status = 'registering';
  /** @type {() => void} */
  let written = () => undefined;
  const requestWritten = new Promise((resolve) => (written = () => resolve(undefined)));
  link.settled = register(api, ['INVOKE'], written).then(
    (id) => {
      link.status = 'registered';
      void serve(id);
    },
    (error) => {
      written();
      link.status = 'failed';
      link.reason = `could not register with the Lambda Extensions API: ${error instanceof Error ? error.message : String(error)}`;
      // A kit that connected meanwhile exports in its invocations from now on.
      link.onStopped?.();
    },
  );
  await requestWritten;

  /**
   * The extension's loop: wait for an event, let the kit export the invocation's spans, ask for the next one.
   * @param {string} id
   */
  async function serve(id) {
    const headers = { 'Lambda-Extension-Identifier': id };
    const next = api.requestBytes('GET', '/event/next', headers);
    // The kit connects when its telemetry starts, with the first traced invocation: the first event may come first.
    let kitMayConnect = true;
    for (let failures = 0; ;) {
      /** @type {{ eventType?: string } & Partial<InvokeEvent>} */
      let event;
      try {
        const answer = await api.send(next, { hold: true });
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
        await api
          .send(api.requestBytes('POST', '/exit/error', { ...headers, 'Lambda-Extension-Function-Error-Type': 'Extension.EventsUnavailable' }), {
            timeoutMs: REGISTER_TIMEOUT_MS,
          })
          .catch(() => undefined);
        return;
      }
      if (event.eventType === 'INVOKE' && !link.onInvoke && kitMayConnect) {
        kitMayConnect = await kitConnects(/** @type {InvokeEvent} */ (event));
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
 * Waits for the kit to connect (lib/export/after-response.ts sets `onInvoke`, then calls `connected`), at most
 * KIT_GRACE_MS and never past the invocation's deadline; false when it did not (a handler that does not use the
 * kit: its events are then acknowledged at once).
 * @param {InvokeEvent} event
 * @returns {Promise<boolean>}
 */
function kitConnects(event) {
  const leftMs = Number.isFinite(event.deadlineMs) ? event.deadlineMs - Date.now() - KIT_DEADLINE_MARGIN_MS : KIT_GRACE_MS;
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(false), Math.max(0, Math.min(KIT_GRACE_MS, leftMs)));
    /** @param {boolean} connected */
    const finish = (connected) => {
      clearTimeout(timer);
      link.connected = undefined;
      resolve(connected);
    };
    link.connected = () => finish(true);
  });
}

/** @typedef {{ status: number, header: (name: string) => string | undefined, body: string }} Answer `header` takes a lower-case name. */

/**
 * The Extensions API's client: one kept-alive connection, which the long-polled event request reuses at every
 * invocation, one request at a time. HTTP/1.1 is written and read here rather than through node:http, whose
 * client costs more CPU per event than the rest of an invocation's tracing; what is read is what an HTTP/1.1
 * server may send (headers in any case, a body of a given length, chunked, or up to the connection's end). A
 * connection that breaks fails the request in flight; the next request opens a new one.
 * @param {string} address AWS_LAMBDA_RUNTIME_API
 */
function extensionsApi(address) {
  const [host, port] = splitHostPort(address);
  /** One buffer for every read (net's `onread`): nothing is allocated per event unless it arrives in pieces. */
  const readBuffer = Buffer.allocUnsafe(64 * 1024);
  /** @type {import('node:net').Socket | undefined} */
  let socket;
  /**
   * The request in flight. `held`: its answer is kept as it arrives but not acted on (nor is the connection's end or
   * error, once the answer has begun to arrive) until `link.readEvent()`; `closed` and `error` are what happened to
   * the connection meanwhile.
   * @type {{ received: Buffer | undefined, resolve: (answer: Answer) => void, reject: (error: Error) => void, held: boolean, closed: boolean, error: Error | undefined } | undefined}
   */
  let pending;

  /** @param {Error} error */
  const fail = (error) => {
    const failed = pending;
    pending = undefined;
    socket?.destroy();
    socket = undefined;
    failed?.reject(error);
  };
  /**
   * @param {Buffer} received
   * @param {boolean} ended the connection has ended: a body without a length ends there
   */
  const tryAnswer = (received, ended) => {
    let parsed;
    try {
      parsed = parseResponse(received, ended);
    } catch (error) {
      fail(/** @type {Error} */ (error));
      return;
    }
    if (!parsed) {
      if (ended) fail(new Error('the connection closed before the answer was complete'));
      return;
    }
    const done = /** @type {NonNullable<typeof pending>} */ (pending);
    pending = undefined;
    // No pipelining: bytes beyond the answer mean a confused connection, which is not reused.
    if (!parsed.keepAlive || parsed.length !== received.length) {
      socket?.destroy();
      socket = undefined;
    }
    done.resolve(parsed.answer);
  };
  /** The connection has ended: the answer is what was received, if it is complete. */
  const answerAtClose = () => {
    if (pending?.received) tryAnswer(pending.received, true);
    else fail(new Error('the connection closed'));
  };
  /** `link.readEvent()`: acts on what arrived for the held request (and on what happened to its connection) since. */
  const release = () => {
    const waiting = pending;
    if (!waiting?.held) return;
    waiting.held = false;
    if (waiting.closed || waiting.error) {
      // The connection is gone: the next request opens another.
      socket?.destroy();
      socket = undefined;
    }
    // In the order it happened: an answer complete before the connection broke is still the answer.
    if (waiting.received) tryAnswer(waiting.received, waiting.closed && !waiting.error);
    if (pending !== waiting) return;
    if (waiting.error) fail(waiting.error);
    else if (waiting.closed) answerAtClose();
  };
  const open = () => {
    const opened = connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (/** @type {number} */ bytes) => {
          if (!pending) {
            fail(new Error('the Extensions API sent what was not asked for'));
            return false;
          }
          const chunk = readBuffer.subarray(0, bytes);
          if (pending.held) {
            // Kept for `link.readEvent()`, copied: the next read reuses the buffer.
            pending.received = pending.received ? Buffer.concat([pending.received, chunk]) : Buffer.from(chunk);
            return true;
          }
          // Copied only when the answer is incomplete: the next read reuses the buffer.
          const received = pending.received ? Buffer.concat([pending.received, chunk]) : chunk;
          const waiting = pending;
          tryAnswer(received, false);
          if (pending === waiting) waiting.received = received === chunk ? Buffer.from(chunk) : received;
          return true;
        },
      },
    });
    const closed = () => {
      if (opened !== socket) return;
      // Held once its answer has begun to arrive; before, the request may never have reached the Extensions API, and
      // waiting for the kit could wait for an invocation that Lambda never starts.
      if (pending?.held && pending.received) pending.closed = true;
      else answerAtClose();
    };
    opened.on('error', (error) => {
      if (opened !== socket) return;
      if (pending?.held && pending.received) pending.error ??= error;
      else fail(error);
    });
    opened.on('end', closed);
    opened.on('close', closed);
    return opened;
  };

  /**
   * The bytes of one request (the event request's are built once, and written at every invocation).
   * @param {string} method
   * @param {string} path
   * @param {Record<string, string>} headers
   * @param {string} [body]
   */
  const requestBytes = (method, path, headers, body) => {
    let head = `${method} ${BASE}${path} HTTP/1.1\r\nHost: ${address}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    if (body !== undefined || method !== 'GET') head += `Content-Length: ${Buffer.byteLength(body ?? '')}\r\n`;
    return Buffer.from(`${head}\r\n${body ?? ''}`, 'utf8');
  };

  /**
   * @param {Buffer} bytes from `requestBytes`
   * @param {{ timeoutMs?: number, hold?: boolean, detached?: boolean, written?: () => void }} [options] `timeoutMs`: no
   *   limit when absent (the event request waits as long as the sandbox is idle); `hold`: hold the answer, unparsed,
   *   until `link.readEvent()`, if `link.holdEvent()`; `detached`: the request never keeps the process alive (an event
   *   that never comes); `written`: called once the request has been handed to the connection (or could not be).
   * @returns {Promise<Answer>}
   */
  const send = (bytes, { timeoutMs, hold = false, detached = false, written } = {}) =>
    new Promise((resolve, reject) => {
      if (pending) throw new Error('a request is already in flight');
      socket ??= open();
      if (detached) socket.unref();
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      pending = {
        received: undefined,
        resolve: timeoutMs ? (answer) => (clearTimeout(timer), resolve(answer)) : resolve,
        reject: timeoutMs ? (error) => (clearTimeout(timer), reject(error)) : reject,
        held: false,
        closed: false,
        error: undefined,
      };
      if (timeoutMs) timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      socket.write(bytes, written);
      if (hold && link.holdEvent?.()) {
        // Read from the socket as it arrives (in the wake-up that brings the runtime its invocation), but neither
        // parsed nor acted on until asked for. Pausing the socket instead (readStop, then readStart) cost two
        // epoll_ctl calls and one more turn of the event loop per invocation.
        pending.held = true;
        link.readEvent = () => {
          link.readEvent = () => undefined;
          release();
        };
      }
    });
  return { requestBytes, send };
}

/**
 * One HTTP/1.1 answer from the start of `received`, or undefined while incomplete. Only the headers asked for are
 * read (the event's answer is read at every invocation: no object of every header is built for it).
 * @param {Buffer} received
 * @param {boolean} ended the connection has ended (a body with neither a length nor chunks ends there)
 * @returns {{ answer: Answer, length: number, keepAlive: boolean } | undefined}
 */
function parseResponse(received, ended) {
  for (let start = 0; ;) {
    const headEnd = received.indexOf('\r\n\r\n', start, 'latin1');
    if (headEnd < 0) {
      if (received.length - start > MAX_HEAD_BYTES) throw new Error('an answer without an end of headers');
      return undefined;
    }
    // Lower case keeps a latin1 string's length: names are found in `lower`, values read from `head`.
    const head = received.toString('latin1', start, headEnd + 2);
    const lower = head.toLowerCase();
    if (!lower.startsWith('http/1.') || (head[7] !== '0' && head[7] !== '1') || head[8] !== ' ' || !/^\d{3}$/.test(head.slice(9, 12))) {
      throw new Error(`not an HTTP/1.x answer: ${JSON.stringify(head.slice(0, Math.min(40, head.indexOf('\r\n'))))}`);
    }
    const status = Number(head.slice(9, 12));
    /** @param {string} name lower case */
    const header = (name) => {
      const at = lower.indexOf(`\r\n${name}:`);
      return at < 0 ? undefined : head.slice(at + name.length + 3, head.indexOf('\r\n', at + 2)).trim();
    };
    const bodyStart = headEnd + 4;
    // An interim answer (100 Continue) comes before the real one.
    if (status < 200) {
      start = bodyStart;
      continue;
    }
    const connection = (header('connection') ?? '').toLowerCase();
    const keepAlive = head[7] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const answer = (/** @type {string} */ body) => ({ status, header, body });
    if (status === 204 || status === 304) return { answer: answer(''), length: bodyStart, keepAlive };
    if (/\bchunked\b/i.test(header('transfer-encoding') ?? '')) {
      const chunked = readChunks(received, bodyStart);
      return chunked && { answer: answer(chunked.body), length: chunked.end, keepAlive };
    }
    const contentLength = header('content-length');
    if (contentLength !== undefined) {
      const length = /^\d{1,15}$/.test(contentLength) ? Number(contentLength) : Number.NaN;
      if (Number.isNaN(length)) throw new Error(`a bad Content-Length: ${contentLength.slice(0, 20)}`);
      if (received.length < bodyStart + length) return undefined;
      return { answer: answer(received.toString('utf8', bodyStart, bodyStart + length)), length: bodyStart + length, keepAlive };
    }
    // Neither a length nor chunks: the body is what comes until the connection ends.
    if (!ended) return undefined;
    return { answer: answer(received.toString('utf8', bodyStart)), length: received.length, keepAlive: false };
  }
}

/**
 * A chunked body from `start`: its text and where it ends (after any trailers), or undefined while incomplete.
 * @param {Buffer} received
 * @param {number} start
 */
function readChunks(received, start) {
  /** @type {Buffer[]} */
  const chunks = [];
  for (let at = start; ;) {
    const lineEnd = received.indexOf('\r\n', at, 'latin1');
    if (lineEnd < 0) return undefined;
    const size = received.toString('latin1', at, lineEnd).split(';')[0].trim();
    if (!/^[0-9a-f]{1,8}$/i.test(size)) throw new Error(`a bad chunk size: ${JSON.stringify(size.slice(0, 20))}`);
    const dataEnd = lineEnd + 2 + Number.parseInt(size, 16);
    if (dataEnd === lineEnd + 2) {
      // The last chunk: trailers, if any, then an empty line.
      const end = received.indexOf('\r\n', dataEnd, 'latin1') === dataEnd ? dataEnd + 2 : received.indexOf('\r\n\r\n', dataEnd, 'latin1') + 4;
      if (end < 4) return undefined;
      return { body: chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'), end };
    }
    if (received.length < dataEnd + 2) return undefined;
    if (received[dataEnd] !== 13 || received[dataEnd + 1] !== 10) throw new Error('a chunk without its line end');
    chunks.push(received.subarray(lineEnd + 2, dataEnd));
    at = dataEnd + 2;
  }
}

/**
 * Lambda Managed Instances: the runtime client runs the handler in worker threads, several invocations at once,
 * and the environment is never frozen, so each worker's kit exports in the background (lib/export/export-scheduler.ts) and
 * no event is asked for: Lambda refuses an internal extension that asks for any ("No events allowed for internal
 * extensions", aws-lambda-runtime-interface-emulator, internal/lambda-managed-instances). This file runs once in
 * the main thread (which runs no handler) and once in each worker. The main thread registers with no events, which
 * is what makes Lambda end the environment with SIGTERM (not SIGKILL at once); a worker never sees the signal
 * (Node.js delivers signals to the main thread only), so the main thread asks every worker that holds spans to
 * export them (lib/export/shutdown-channel.ts) and lets the signal end the process once they have answered.
 * @param {ReturnType<typeof extensionsApi>} api
 */
async function managedInstances(api) {
  const { isMainThread, BroadcastChannel } = process.getBuiltinModule('node:worker_threads');
  link.reason = 'Lambda Managed Instances: each worker thread exports its spans in the background';
  if (!isMainThread) return;
  // Each worker's waiting /next takes one of libuv's threads (the runtime client's native call), 4 by default: with
  // as many workers, every file read and DNS lookup in the process (an export's, the handler's) waits for an event
  // to arrive. Read when the pool first starts, after this file: one thread per worker, and the usual 4 besides.
  if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = String(Math.min(1024, workerCount() + 4));
  drainWorkersOnSigterm(new BroadcastChannel(SHUTDOWN_CHANNEL));
  try {
    const id = await register(api, []);
    // Lambda waits for every registered extension to ask for its next event before init is over; none comes.
    void api.send(api.requestBytes('GET', '/event/next', { 'Lambda-Extension-Identifier': id }), { detached: true }).catch(() => undefined);
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
  return 8 * Math.max(1, process.getBuiltinModule('node:os').availableParallelism());
}

/**
 * At SIGTERM: every worker that announced a drain request (it holds spans) is asked to export them before a
 * deadline; once all have answered, or the deadline has passed, the listener takes itself off and the signal ends the
 * process as it would have (process.exit would wait for the workers' native calls). Asked and answered in shared
 * memory, woken with Atomics.notify: a worker reads a channel's first message only after Node.js has loaded its
 * MessageEvent class (~80 ms of CPU), which made one worker's export miss the SIGKILL on a loaded machine.
 * @param {import('node:worker_threads').BroadcastChannel} channel
 */
function drainWorkersOnSigterm(channel) {
  channel.unref();
  /** @type {SharedArrayBuffer[]} */
  const requests = [];
  channel.onmessage = (/** @type {any} */ event) => {
    if (event?.data?.type === 'ready' && event.data.request instanceof SharedArrayBuffer) requests.push(event.data.request);
  };
  process.on('SIGTERM', function exportBeforeExit() {
    const endAt = Date.now() + SHUTDOWN_BUDGET_MS;
    /** @type {Promise<unknown>[]} */
    const answers = [];
    for (const request of requests) {
      const state = new Int32Array(request, 0, 1);
      new Float64Array(request, DEADLINE_OFFSET, 1)[0] = endAt - SHUTDOWN_MARGIN_MS;
      // A worker whose set-up was replaced has closed its request: it holds nothing there.
      if (Atomics.compareExchange(state, 0, DRAIN_STATE.waiting, DRAIN_STATE.asked) !== DRAIN_STATE.waiting) continue;
      Atomics.notify(state, 0);
      answers.push(answered(state, endAt));
    }
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    // The answers' own waits end at `endAt` too; this timer is what ends the process whatever they do.
    const deadline = new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_BUDGET_MS)));
    void Promise.race([Promise.all(answers), deadline]).then(() => {
      clearTimeout(timer);
      channel.close();
      process.removeListener('SIGTERM', exportBeforeExit);
      if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
    });
  });
}

/**
 * Resolves once the worker has answered its request (its state is no longer `asked`), or at `endAt` (epoch ms).
 * @param {Int32Array} state
 * @param {number} endAt
 * @returns {Promise<unknown>}
 */
async function answered(state, endAt) {
  for (;;) {
    const leftMs = endAt - Date.now();
    if (leftMs <= 0) return;
    const wait = Atomics.waitAsync(state, 0, DRAIN_STATE.asked, leftMs);
    if ((await wait.value) !== 'ok' || Atomics.load(state, 0) !== DRAIN_STATE.asked) return;
  }
}

/**
 * Registers this process as an internal extension for `events`; its identifier, or an error saying why not.
 * @param {ReturnType<typeof extensionsApi>} api
 * @param {string[]} events
 * @param {() => void} [written] called once the request has been handed to the connection
 */
async function register(api, events, written) {
  const answer = await api.send(
    api.requestBytes('POST', '/register', { 'Lambda-Extension-Name': NAME, 'Content-Type': 'application/json' }, JSON.stringify({ events })),
    { timeoutMs: REGISTER_TIMEOUT_MS, written },
  );
  const id = answer.header('lambda-extension-identifier');
  if (answer.status !== 200 || !id) throw new Error(`registration refused (${answer.status}${describeError(answer.body)})`);
  return id;
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
