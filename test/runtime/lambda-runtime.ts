/**
 * A function package run the way the Lambda Node.js runtime runs it: AWS's own runtime interface client
 * (`aws-lambda-ric`, the code behind `/var/runtime` in the nodejs images) loads the handler from the unzipped
 * package and talks to a local Runtime API (2018-06-01) served here, one per function.
 *
 * Endpoints served: `GET /runtime/invocation/next` (long-polls until an event is queued, with the documented
 * Lambda-Runtime-* headers), `POST /runtime/invocation/{id}/response`, `POST /runtime/invocation/{id}/error`
 * and `POST /runtime/init/error`. Everything binds to 127.0.0.1; `stop()` kills the client by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
const RIC_DIR = join(ROOT, 'node_modules', 'aws-lambda-ric');
const API = '/2018-06-01/runtime';
const ACCOUNT_ID = '123456789012';
const MAX_LOG_CHARS = 64 * 1024;

/** What the function reported, as the Runtime API received it. */
export type InvokeResult =
  | { requestId: string; ok: true; payload: unknown }
  | { requestId: string; ok: false; errorType: string; error: { errorType?: string; errorMessage?: string; trace?: string[] } };

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
  initError(): InvokeResult & { ok: false } | undefined;
  /** What the function printed (stdout and stderr), for failure messages. */
  logs(): string;
  stop(): Promise<void>;
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
  settle(result: InvokeResult): void;
  fail(error: Error): void;
}

export async function startPackagedFunction(options: PackagedFunctionOptions): Promise<PackagedFunction> {
  const problem = runtimeClientProblem();
  if (problem) throw new Error(problem);

  const queued: Pending[] = [];
  const inFlight = new Map<string, Pending>();
  let parkedNext: ServerResponse | undefined;
  let initError: (InvokeResult & { ok: false }) | undefined;
  let output = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  const failAll = (reason: () => Error) => {
    for (const pending of [...queued.splice(0), ...inFlight.values()]) pending.fail(reason());
    inFlight.clear();
  };
  const serveNext = () => {
    if (!parkedNext || queued.length === 0) return;
    const pending = queued.shift()!;
    inFlight.set(pending.requestId, pending);
    parkedNext.writeHead(200, { 'content-type': 'application/json', ...pending.headers }).end(pending.event);
    parkedNext = undefined;
  };

  const server: Server = createServer((request, response) => {
    void route(request, response).catch((error: Error) => {
      if (!response.headersSent) response.writeHead(500).end(JSON.stringify({ errorMessage: error.message }));
    });
  });
  async function route(request: IncomingMessage, response: ServerResponse) {
    const path = request.url ?? '';
    const body = await readBody(request);
    if (request.method === 'GET' && path === `${API}/invocation/next`) {
      parkedNext = response;
      response.on('close', () => {
        if (parkedNext === response) parkedNext = undefined;
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
      if (done[2] === 'response') pending.settle({ requestId: pending.requestId, ok: true, payload: parseJson(body) });
      else {
        const error = (parseJson(body) ?? {}) as { errorType?: string };
        const errorType = String(request.headers['lambda-runtime-function-error-type'] ?? error.errorType ?? 'Unhandled');
        pending.settle({ requestId: pending.requestId, ok: false, errorType, error });
      }
      return;
    }
    if (request.method === 'POST' && path === `${API}/init/error`) {
      const error = (parseJson(body) ?? {}) as { errorType?: string };
      const errorType = String(request.headers['lambda-runtime-function-error-type'] ?? error.errorType ?? 'Unknown');
      initError = { requestId: '', ok: false, errorType, error };
      response.writeHead(202).end(JSON.stringify({ status: 'OK' }));
      return;
    }
    response.writeHead(404).end(JSON.stringify({ errorType: 'NotFound', path }));
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
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
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
      return new Promise<InvokeResult>((settle, fail) => {
        const requestId = randomUUID();
        const timer = setTimeout(() => {
          inFlight.delete(requestId);
          fail(new Error(`${options.name}: no response to ${requestId} within ${timeoutMs} ms${describeInit()}\n${output}`));
        }, timeoutMs + 2_000);
        const headers: Record<string, string> = {
          'Lambda-Runtime-Aws-Request-Id': requestId,
          'Lambda-Runtime-Deadline-Ms': String(Date.now() + timeoutMs),
          'Lambda-Runtime-Invoked-Function-Arn': `arn:aws:lambda:${region}:${ACCOUNT_ID}:function:${options.name}`,
          // Lambda's own X-Ray header (tracing off: not sampled), with the Lineage recursion detection reads.
          'Lambda-Runtime-Trace-Id': `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=0;Lineage=1:8f4a1b2c:0`,
        };
        if (invokeOptions.clientContext !== undefined) headers['Lambda-Runtime-Client-Context'] = JSON.stringify(invokeOptions.clientContext);
        queued.push({
          requestId,
          event: JSON.stringify(event),
          headers,
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
    async stop() {
      if (!exit) child.kill('SIGKILL');
      await exited;
      parkedNext?.destroy();
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    },
  };
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
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
