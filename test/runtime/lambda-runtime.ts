/**
 * A function package run the way the Lambda Node.js runtime runs it: AWS's own runtime interface client
 * (`aws-lambda-ric`, the code behind `/var/runtime` in the nodejs images) loads the handler from the unzipped
 * package and talks to a local Runtime API (2018-06-01) served here, one per function.
 *
 * Endpoints served: `GET /runtime/invocation/next` (long-polls until an event is queued, with the documented
 * Lambda-Runtime-* headers), `POST /runtime/invocation/{id}/response` (buffered, or streamed with its failure in
 * trailers), `POST /runtime/invocation/{id}/error`
 * and `POST /runtime/init/error`; and the Extensions API (2020-01-01) for internal extensions: `register` (only
 * before the runtime's first `/next`, INVOKE only, as Lambda answers), `event/next` (an INVOKE event per
 * invocation, with requestId and deadlineMs), `init/error` and `exit/error`.
 *
 * As on Lambda, the next invocation is handed out only when the runtime *and* every registered extension are
 * waiting on their `/next`: that is the moment Lambda may freeze the sandbox, and with `freeze` this harness does
 * (SIGSTOP until the next invocation, SIGCONT then), so that work left running after it stalls as it would on AWS.
 *
 * With `managedInstances`, it answers as Lambda Managed Instances do (AWS's emulator of them,
 * aws-lambda-runtime-interface-emulator's internal/lambda-managed-instances): the runtime client runs in its
 * multi-concurrent mode (AWS_LAMBDA_MAX_CONCURRENCY set, handlers in AWS_LAMBDA_NODEJS_WORKER_COUNT worker threads,
 * each long-polling `/next` on its own), every waiting `/next` takes the next queued event as long as fewer than the
 * maximum concurrency are in flight, responses and errors are matched to their invocation by request id, nothing is
 * frozen, and extensions get no events: an internal extension that asks for any is refused (403
 * Extension.InvalidEventType). Shutdown is SIGTERM then SIGKILL after the emulator's 600 ms when an extension is
 * registered, SIGKILL at once otherwise (its rapid/shutdown.go).
 *
 * Everything binds to 127.0.0.1; `stop()` kills the client by its PID (after SIGTERM and 500 ms when graceful).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
const RIC_DIR = join(ROOT, 'node_modules', 'aws-lambda-ric');
const API = '/2018-06-01/runtime';
const EXTENSION_API = '/2020-01-01/extension';
const ACCOUNT_ID = '123456789012';
const MAX_LOG_CHARS = 64 * 1024;
/** How long the runtime has after SIGTERM before SIGKILL: Lambda's 500 ms, and 600 ms in AWS's Managed Instances emulator. */
const SHUTDOWN_GRACE_MS = 500;
const MANAGED_INSTANCES_SHUTDOWN_GRACE_MS = 600;

/** What the function reported, as the Runtime API received it. */
export type InvokeResult = (
  | { requestId: string; ok: true; payload: unknown; streamed?: StreamedResponse }
  | { requestId: string; ok: false; errorType: string; error: { errorType?: string; errorMessage?: string; trace?: string[] } }
) & {
  /** From handing the event to the runtime to its response (or error), in ms (sub-millisecond precision). */
  responseMs?: number;
};

/**
 * A response the runtime streamed (`awslambda.streamifyResponse`: it posts with Lambda-Runtime-Function-Response-Mode:
 * streaming, chunked, and reports a failure in trailers): its content type and every byte, prelude included.
 */
export interface StreamedResponse {
  contentType: string | undefined;
  body: Buffer;
}

/** An internal extension as the Extensions API saw it. */
export interface RegisteredExtension {
  name: string;
  id: string;
  events: string[];
}

export interface InvokeOptions {
  /** Sent as Lambda-Runtime-Client-Context (what the Invoke API's ClientContext becomes). */
  clientContext?: unknown;
  /** The invocation's timeout: Lambda-Runtime-Deadline-Ms is now + this. */
  timeoutMs?: number;
}

export interface PackagedFunction {
  readonly name: string;
  invoke(event: unknown, options?: InvokeOptions): Promise<InvokeResult>;
  /** The error the runtime reported from `init/error`, when loading the handler failed. */
  initError(): (InvokeResult & { ok: false }) | undefined;
  /** Extensions that registered, and the registrations the Extensions API refused (with its answer). */
  extensions(): { registered: RegisteredExtension[]; refused: { name: string; errorType: string }[] };
  /**
   * Resolves when the runtime and every extension wait on `/next` with nothing in flight (when Lambda may
   * freeze the sandbox); gives the time since the last invocation was handed out.
   */
  whenIdle(timeoutMs?: number): Promise<number>;
  /** What the function printed (stdout and stderr), for failure messages. */
  logs(): string;
  /**
   * Kills the runtime; with `graceful`, as Lambda ends a sandbox with extensions: SIGTERM, then SIGKILL after 500 ms
   * (Managed Instances: 600 ms, and SIGKILL at once when no extension registered).
   */
  stop(options?: { graceful?: boolean }): Promise<void>;
  /** The runtime's process id (for its CPU time in /proc). */
  readonly pid: number | undefined;
  /** How the process ended (after `stop`). */
  exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /**
   * The most invocations in flight at once, overall and per connection their responses came on: the runtime
   * client's native client posts every response of a worker thread on one kept-alive connection of its own (its
   * `/next` requests come on others), so under Managed Instances that is per worker.
   */
  concurrency(): { peak: number; perResponseConnection: { invocations: number; peak: number }[] };
}

/** Lambda Managed Instances: one environment runs many invocations at once, in the runtime client's worker threads. */
export interface ManagedInstancesOptions {
  /** AWS_LAMBDA_NODEJS_WORKER_COUNT: the worker threads the runtime client runs handlers in. */
  workers: number;
  /** AWS_LAMBDA_MAX_CONCURRENCY: the most invocations the environment is handed at once, over all workers. */
  maxConcurrency: number;
}

export interface PackagedFunctionOptions {
  /** Lambda function name (AWS_LAMBDA_FUNCTION_NAME). */
  name: string;
  /** The unzipped package: LAMBDA_TASK_ROOT, the working directory. */
  taskRoot: string;
  /** `_HANDLER`, e.g. `functions/create-order.handler`. */
  handler: string;
  /** The function's own environment variables (from the CloudFormation template). */
  environment: Record<string, string>;
  /** What the runtime provides beside the package (NODE_PATH): the AWS SDK v3, nothing else. */
  nodePath: string;
  memoryMb?: number;
  /** Freeze the process (SIGSTOP) whenever Lambda could, thaw it (SIGCONT) for the next invocation. */
  freeze?: boolean;
  /** Refuse every extension registration, as Lambda does once the runtime has asked for its first event. */
  refuseRegistrations?: boolean;
  /** X-Ray active tracing on the function (Tracing: Active): Lambda's trace header then says Sampled=1. */
  activeTracing?: boolean;
  /**
   * End the environment at an invocation's deadline, as Lambda does when a function times out: the runtime is
   * killed (SIGKILL, no SIGTERM first) and the invocation answers `Sandbox.Timedout`.
   */
  killAtDeadline?: boolean;
  /** Run as Lambda Managed Instances do (see the top of this file); neither `freeze` nor `killAtDeadline` applies. */
  managedInstances?: ManagedInstancesOptions;
}

/** Whether aws-lambda-ric and its native Runtime API client were installed (npm ci builds it). */
export function runtimeClientProblem(): string | undefined {
  if (!existsSync(join(RIC_DIR, 'index.mjs'))) return 'aws-lambda-ric is not installed: run npm ci';
  if (!existsSync(join(RIC_DIR, 'rapid-client.node'))) {
    return 'aws-lambda-ric has no native client (rapid-client.node): npm ci builds it on Linux with cmake, make and g++';
  }
  return undefined;
}

interface Pending {
  requestId: string;
  event: string;
  headers: Record<string, string>;
  deadlineMs: number;
  timeoutMs: number;
  invokedFunctionArn: string;
  dispatchedAt?: number;
  settle(result: InvokeResult): void;
  fail(error: Error): void;
}

interface Extension extends RegisteredExtension {
  parkedNext?: ServerResponse;
  /** Has asked for its first event (Lambda's init waits for every extension to). */
  ready?: boolean;
}

export async function startPackagedFunction(options: PackagedFunctionOptions): Promise<PackagedFunction> {
  const problem = runtimeClientProblem();
  if (problem) throw new Error(problem);
  const managed = options.managedInstances;
  if (managed && (options.freeze || options.killAtDeadline)) throw new Error('Managed Instances are never frozen, and a timeout does not end them');

  const queued: Pending[] = [];
  const inFlight = new Map<string, Pending>();
  /** The runtime's waiting `/next` requests, oldest first: one at most on-demand, one per worker under Managed Instances. */
  const polls: ServerResponse[] = [];
  let peak = 0;
  /** Each answered invocation: when it was handed out and answered, and the connection the answer came on. */
  const answered: { from: number; to: number; connection: Socket }[] = [];
  /** Lambda closes registration when the runtime first asks for an event. */
  let registrationClosed = options.refuseRegistrations ?? false;
  const extensions = new Map<string, Extension>();
  const refused: { name: string; errorType: string }[] = [];
  let frozen = false;
  let lastDispatchAt = 0;
  const idleWaiters: (() => void)[] = [];
  let initError: (InvokeResult & { ok: false }) | undefined;
  let output = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  const failAll = (reason: () => Error) => {
    for (const pending of [...queued.splice(0), ...inFlight.values()]) pending.fail(reason());
    inFlight.clear();
  };
  const everyoneWaits = () => polls.length > 0 && inFlight.size === 0 && [...extensions.values()].every((extension) => extension.parkedNext);
  /** Managed Instances: nothing queued or in flight (nothing is frozen, nobody else is waited for). */
  const idle = () => (managed ? queued.length === 0 && inFlight.size === 0 : everyoneWaits() && queued.length === 0);
  const serveNext = () => (managed ? serveConcurrently(managed.maxConcurrency) : serveOne());
  /** Hands `pending` to the runtime's oldest waiting `/next`. */
  const handOut = (pending: Pending) => {
    const poll = polls.shift()!;
    inFlight.set(pending.requestId, pending);
    pending.dispatchedAt = lastDispatchAt = performance.now();
    peak = Math.max(peak, inFlight.size);
    poll.writeHead(200, { 'content-type': 'application/json', ...pending.headers }).end(pending.event);
  };
  /**
   * Managed Instances: once init is over (the runtime has asked for an event and every extension is ready), each
   * waiting `/next` takes the next queued event while fewer than `maxConcurrency` are in flight.
   */
  const serveConcurrently = (maxConcurrency: number) => {
    const initDone = registrationClosed && [...extensions.values()].every((extension) => extension.ready);
    if (!initDone) return;
    while (queued.length > 0 && polls.length > 0 && inFlight.size < maxConcurrency) handOut(queued.shift()!);
    if (idle()) for (const wake of idleWaiters.splice(0)) wake();
  };
  const serveOne = () => {
    if (!everyoneWaits()) return;
    if (queued.length === 0) {
      for (const wake of idleWaiters.splice(0)) wake();
      if (options.freeze && !frozen && !exit) {
        frozen = true;
        child.kill('SIGSTOP');
      }
      return;
    }
    thaw();
    const pending = queued.shift()!;
    handOut(pending);
    if (options.killAtDeadline) {
      setTimeout(
        () => {
          if (!inFlight.has(pending.requestId) || exit) return;
          inFlight.delete(pending.requestId);
          const seconds = (pending.timeoutMs / 1000).toFixed(2);
          // Answered once the process is gone, as Lambda answers once it has reset the environment.
          child.once('exit', () =>
            pending.settle({
              requestId: pending.requestId,
              ok: false,
              errorType: 'Sandbox.Timedout',
              error: { errorType: 'Sandbox.Timedout', errorMessage: `RequestId: ${pending.requestId} Error: Task timed out after ${seconds} seconds` },
            }),
          );
          child.kill('SIGKILL');
        },
        Math.max(0, pending.deadlineMs - Date.now()),
      ).unref();
    }
    for (const extension of extensions.values()) {
      const event = {
        eventType: 'INVOKE',
        deadlineMs: pending.deadlineMs,
        requestId: pending.requestId,
        invokedFunctionArn: pending.invokedFunctionArn,
        tracing: {},
      };
      extension
        .parkedNext!.writeHead(200, { 'content-type': 'application/json', 'Lambda-Extension-Event-Identifier': randomUUID() })
        .end(JSON.stringify(event));
      extension.parkedNext = undefined;
    }
  };
  const thaw = () => {
    if (!frozen) return;
    frozen = false;
    child.kill('SIGCONT');
  };

  const server: Server = createServer((request, response) => {
    void route(request, response).catch((error: Error) => {
      if (!response.headersSent) response.writeHead(500).end(JSON.stringify({ errorMessage: error.message }));
    });
  });
  async function route(request: IncomingMessage, response: ServerResponse) {
    const path = request.url ?? '';
    // A streamed response's bytes are kept as they came (latin1 maps each byte to one character and back).
    const body = await readBody(request, isStreamed(request) ? 'latin1' : 'utf8');
    if (request.method === 'GET' && path === `${API}/invocation/next`) {
      registrationClosed = true;
      polls.push(response);
      response.on('close', () => {
        const waiting = polls.indexOf(response);
        if (waiting >= 0) polls.splice(waiting, 1);
      });
      serveNext();
      return;
    }
    const done = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(path);
    if (request.method === 'POST' && done) {
      const pending = inFlight.get(decodeURIComponent(done[1]));
      if (!pending) return void response.writeHead(400).end(JSON.stringify({ errorType: 'InvalidRequestID' }));
      inFlight.delete(pending.requestId);
      response.writeHead(202).end(JSON.stringify({ status: 'OK' }));
      const answeredAt = performance.now();
      const responseMs = answeredAt - (pending.dispatchedAt ?? answeredAt);
      answered.push({ from: pending.dispatchedAt ?? answeredAt, to: answeredAt, connection: request.socket });
      const streamedError = request.trailers['lambda-runtime-function-error-type'];
      if (isStreamed(request) && streamedError) {
        const error = parseJson(Buffer.from(request.trailers['lambda-runtime-function-error-body'] ?? '', 'base64').toString('utf8')) ?? {};
        pending.settle({ requestId: pending.requestId, ok: false, errorType: streamedError, error: error as { errorType?: string }, responseMs });
      } else if (isStreamed(request)) {
        const streamed = { contentType: request.headers['content-type'], body: Buffer.from(body, 'latin1') };
        pending.settle({ requestId: pending.requestId, ok: true, payload: undefined, streamed, responseMs });
      } else if (done[2] === 'response') pending.settle({ requestId: pending.requestId, ok: true, payload: parseJson(body), responseMs });
      else {
        const error = (parseJson(body) ?? {}) as { errorType?: string };
        const errorType = String(request.headers['lambda-runtime-function-error-type'] ?? error.errorType ?? 'Unhandled');
        pending.settle({ requestId: pending.requestId, ok: false, errorType, error, responseMs });
      }
      // Managed Instances: a slot is free for the next queued event.
      if (managed) serveNext();
      return;
    }
    if (path.startsWith(`${EXTENSION_API}/`)) return routeExtension(request, response, path.slice(EXTENSION_API.length), body);
    if (request.method === 'POST' && path === `${API}/init/error`) {
      const error = (parseJson(body) ?? {}) as { errorType?: string };
      const errorType = String(request.headers['lambda-runtime-function-error-type'] ?? error.errorType ?? 'Unknown');
      initError = { requestId: '', ok: false, errorType, error };
      response.writeHead(202).end(JSON.stringify({ status: 'OK' }));
      return;
    }
    response.writeHead(404).end(JSON.stringify({ errorType: 'NotFound', path }));
  }
  function routeExtension(request: IncomingMessage, response: ServerResponse, path: string, body: string) {
    const refuse = (status: number, errorType: string, errorMessage: string) =>
      void response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ errorType, errorMessage }));
    if (request.method === 'POST' && path === '/register') {
      const name = String(request.headers['lambda-extension-name'] ?? '');
      const events = ((parseJson(body) ?? {}) as { events?: unknown }).events;
      const problem: [string, string] | undefined = !name
        ? ['Extension.InvalidExtensionName', 'Empty extension name']
        : managed
          ? managedInstancesRegistrationProblem(name, events)
          : registrationClosed
            ? ['Extension.RegistrationServiceOff', `ExtensionsAPI failed to register Internal Extension ${name}`]
            : !Array.isArray(events) || events.some((event) => event !== 'INVOKE')
              ? [
                  Array.isArray(events) && events.includes('SHUTDOWN') ? 'ShutdownEventNotSupportedForInternalExtension' : 'Extension.InvalidEventType',
                  `events ${JSON.stringify(events)}`,
                ]
              : [...extensions.values()].some((extension) => extension.name === name)
                ? ['Extension.AlreadyRegistered', name]
                : undefined;
      if (problem) {
        refused.push({ name, errorType: problem[0] });
        return refuse(403, ...problem);
      }
      const extension: Extension = { name, id: randomUUID(), events: (events ?? []) as string[] };
      extensions.set(extension.id, extension);
      response
        .writeHead(200, { 'content-type': 'application/json', 'Lambda-Extension-Identifier': extension.id })
        .end(JSON.stringify({ functionName: options.name, functionVersion: '$LATEST', handler: options.handler }));
      return;
    }
    const extension = extensions.get(String(request.headers['lambda-extension-identifier'] ?? ''));
    if (!extension) return refuse(403, 'Extension.InvalidExtensionIdentifier', 'Invalid Lambda-Extension-Identifier');
    if (request.method === 'GET' && path === '/event/next') {
      // Under Managed Instances it is never answered: an internal extension has no events there.
      extension.ready = true;
      extension.parkedNext = response;
      response.on('close', () => {
        if (extension.parkedNext === response) extension.parkedNext = undefined;
      });
      serveNext();
      return;
    }
    if (request.method === 'POST' && (path === '/init/error' || path === '/exit/error')) {
      // Lambda resets the sandbox after either: the invocations waiting on it fail.
      response.writeHead(202).end(JSON.stringify({ status: 'OK' }));
      extensions.delete(extension.id);
      failAll(
        () =>
          new Error(
            `${options.name}: extension ${extension.name} reported ${path.slice(1)} ${String(request.headers['lambda-extension-function-error-type'] ?? '')}`,
          ),
      );
      return;
    }
    refuse(404, 'NotFound', path);
  }
  /** The emulator's internal-extension registration (rapi/handler/agentregister.go), checked in its order. */
  function managedInstancesRegistrationProblem(name: string, events: unknown): [string, string] | undefined {
    if (events !== undefined && (!Array.isArray(events) || events.length > 0))
      return ['Extension.InvalidEventType', 'No events allowed for internal extensions'];
    if (registrationClosed) return ['Extension.RegistrationClosed', 'Extension registration closed already'];
    if ([...extensions.values()].some((extension) => extension.name === name))
      return ['Extension.InvalidExtensionState', 'Extension with this name already registered'];
    return undefined;
  }
  // /next long-polls as long as no event is queued: Node's default 300 s request timeout would answer it 408.
  server.requestTimeout = 0;
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', done);
  });
  const port = (server.address() as AddressInfo).port;

  const region = options.environment.AWS_REGION ?? 'eu-west-1';
  const child: ChildProcess = spawn(process.execPath, [join(RIC_DIR, 'index.mjs')], {
    cwd: options.taskRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      // What the Lambda Node.js runtime's environment holds (AWS's "defined runtime environment variables").
      PATH: `${process.env.PATH ?? ''}`,
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      NODE_PATH: options.nodePath,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      AWS_LAMBDA_INITIALIZATION_TYPE: managed ? 'lambda-managed-instances' : 'on-demand',
      // The runtime client's multi-concurrent mode. As on Lambda, _X_AMZN_TRACE_ID is never set there: each
      // invocation's Lambda-Runtime-Trace-Id reaches the handler as context.xRayTraceId (and the InvokeStore).
      ...(managed && { AWS_LAMBDA_MAX_CONCURRENCY: String(managed.maxConcurrency), AWS_LAMBDA_NODEJS_WORKER_COUNT: String(managed.workers) }),
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
      LAMBDA_TASK_ROOT: options.taskRoot,
      _HANDLER: options.handler,
      AWS_LAMBDA_FUNCTION_NAME: options.name,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(options.memoryMb ?? 256),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${options.name}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `2026/11/24/[$LATEST]${randomBytes(16).toString('hex')}`,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      // The function role's credentials (nothing here checks them).
      AWS_ACCESS_KEY_ID: 'ASIAEXAMPLEEXAMPLE00',
      AWS_SECRET_ACCESS_KEY: 'runtime-test-secret',
      AWS_SESSION_TOKEN: 'runtime-test-session',
      ...options.environment,
    },
  });
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-MAX_LOG_CHARS);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // An invocation in flight when the runtime exits fails as Lambda reports it; those not handed out yet reject.
      for (const pending of inFlight.values()) {
        const errorMessage = `RequestId: ${pending.requestId} Error: Runtime exited ${signal ? `with signal: ${signal}` : `with error: exit status ${code}`}`;
        pending.settle({ requestId: pending.requestId, ok: false, errorType: 'Runtime.ExitError', error: { errorType: 'Runtime.ExitError', errorMessage } });
      }
      inFlight.clear();
      failAll(() => new Error(`${options.name}: the runtime exited (${signal ?? `code ${code}`})${describeInit()}\n${output}`));
      done();
    });
  });
  const describeInit = () => (initError ? ` after an init error ${initError.errorType}: ${initError.error.errorMessage}` : '');

  return {
    name: options.name,
    initError: () => initError,
    logs: () => output,
    invoke(event, invokeOptions = {}) {
      if (exit) return Promise.reject(new Error(`${options.name}: the runtime is not running${describeInit()}\n${output}`));
      const timeoutMs = invokeOptions.timeoutMs ?? 10_000;
      const deadlineMs = Date.now() + timeoutMs;
      return new Promise<InvokeResult>((settle, fail) => {
        const requestId = randomUUID();
        const invokedFunctionArn = `arn:aws:lambda:${region}:${ACCOUNT_ID}:function:${options.name}`;
        const timer = setTimeout(() => {
          inFlight.delete(requestId);
          fail(new Error(`${options.name}: no response to ${requestId} within ${timeoutMs} ms${describeInit()}\n${output}`));
        }, timeoutMs + 2_000);
        const headers: Record<string, string> = {
          'Lambda-Runtime-Aws-Request-Id': requestId,
          'Lambda-Runtime-Deadline-Ms': String(deadlineMs),
          'Lambda-Runtime-Invoked-Function-Arn': invokedFunctionArn,
          // Lambda's own X-Ray header (not sampled unless active tracing is on), with the Lineage recursion detection reads.
          'Lambda-Runtime-Trace-Id': `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=${options.activeTracing ? 1 : 0};Lineage=1:8f4a1b2c:0`,
        };
        if (invokeOptions.clientContext !== undefined) headers['Lambda-Runtime-Client-Context'] = JSON.stringify(invokeOptions.clientContext);
        queued.push({
          requestId,
          event: JSON.stringify(event),
          headers,
          deadlineMs,
          timeoutMs,
          invokedFunctionArn,
          settle: (result) => {
            clearTimeout(timer);
            settle(result);
          },
          fail: (error) => {
            clearTimeout(timer);
            fail(error);
          },
        });
        serveNext();
      });
    },
    extensions: () => ({ registered: [...extensions.values()].map(({ name, id, events }) => ({ name, id, events })), refused: [...refused] }),
    whenIdle(timeoutMs = 10_000) {
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${options.name}: runtime and extensions not back on /next within ${timeoutMs} ms\n${output}`)),
          timeoutMs,
        );
        const wake = () => {
          clearTimeout(timer);
          resolve(performance.now() - lastDispatchAt);
        };
        if (idle()) wake();
        else idleWaiters.push(wake);
      });
    },
    pid: child.pid,
    exitStatus: () => exit,
    concurrency() {
      const byConnection = new Map<Socket, { from: number; to: number }[]>();
      for (const { connection, from, to } of answered) {
        const intervals = byConnection.get(connection) ?? [];
        intervals.push({ from, to });
        byConnection.set(connection, intervals);
      }
      return { peak, perResponseConnection: [...byConnection.values()].map(concurrencyOf) };
    },
    async stop(stopOptions = {}) {
      if (!exit) {
        thaw();
        // The Managed Instances emulator sends SIGKILL at once when no extension registered.
        if (stopOptions.graceful && !(managed && extensions.size === 0)) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), managed ? MANAGED_INSTANCES_SHUTDOWN_GRACE_MS : SHUTDOWN_GRACE_MS);
          await exited;
          clearTimeout(killer);
        } else {
          child.kill('SIGKILL');
        }
      }
      await exited;
      for (const extension of extensions.values()) extension.parkedNext?.destroy();
      for (const poll of polls.splice(0)) poll.destroy();
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    },
  };
}

/** How many of these intervals there are, and the most that overlap. */
function concurrencyOf(intervals: { from: number; to: number }[]): { invocations: number; peak: number } {
  const edges = intervals.flatMap(({ from, to }) => [[from, 1] as const, [to, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  let peak = 0;
  for (const [, step] of edges) peak = Math.max(peak, (running += step));
  return { invocations: intervals.length, peak };
}

/** A response posted in streaming mode (the runtime client's header for `awslambda.streamifyResponse` handlers). */
function isStreamed(request: IncomingMessage): boolean {
  return request.headers['lambda-runtime-function-response-mode'] === 'streaming';
}

function readBody(request: IncomingMessage, encoding: BufferEncoding = 'utf8'): Promise<string> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => done(Buffer.concat(chunks).toString(encoding)));
    request.on('error', fail);
  });
}

function parseJson(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return text;
  }
}
