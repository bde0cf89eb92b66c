import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { createSqsServer } from 'local-aws-sqs';
import type { SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiGatewayV2Event } from '../../lib/testing';
import { startOtlpReceiver, type OtlpReceiver } from '../../scripts/offline/otlp-receiver';
import { renderTraceTree, spansOfTrace, waitForConnectedTrace } from '../../scripts/offline/trace-tree';
import { closedPort } from '../closed-port';
import { devService } from '../service';
import { TRACE_ID, TRACEPARENT } from '../trace-ids';
import { startPackagedFunction, type InvokeResult, type PackagedFunction } from './lambda-runtime';
import { packageFixture } from './packaged-fixture';
import { packageService, PREFIX, type ServicePackage } from './packaged-service';
import { closeServer, startSlowCollector } from './slow-collector';

// What `serverless package` produced, unzipped and run under AWS's runtime interface client, with nothing beside
// each package but what the Lambda Node.js runtime provides (the AWS SDK v3 on NODE_PATH) and the environment
// the CloudFormation template gives the function. serverless-offline loads handlers its own way and would hide a
// module left out of the zip, a wrong handler path or a require that only works from the project's node_modules.
// The example pipeline's functions.
const FUNCTIONS = ['create-order', 'process-order', 'notify-customer'] as const;
type FunctionKey = (typeof FUNCTIONS)[number];
const REGION = devService.region;
const QUEUE = devService.queue('OrdersQueue').name;

let pkg: ServicePackage;
let work: string;
let nodePath: string;
let receiver: OtlpReceiver;
let sqs: Server;
let queueUrl: string;
let lambdaApi: Server;
const running = new Map<FunctionKey, PackagedFunction>();
const extra: PackagedFunction[] = [];

beforeAll(async () => {
  pkg = await packageService('runtime-test');
  ({ work, nodePath } = pkg);

  receiver = await startOtlpReceiver(0);
  sqs = await createSqsServer({ port: 0, hostname: '127.0.0.1', accountId: '000000000000', region: REGION, queues: [{ QueueName: QUEUE }] });
  const sqsEndpoint = `http://127.0.0.1:${(sqs.address() as AddressInfo).port}`;
  queueUrl = `${sqsEndpoint}/000000000000/${QUEUE}`;
  lambdaApi = await startLambdaInvokeApi((name) => running.get(name.slice(PREFIX.length) as FunctionKey));
  const overrides: Record<FunctionKey, Record<string, string>> = {
    'create-order': { ORDERS_QUEUE_URL: queueUrl, SQS_ENDPOINT: sqsEndpoint },
    'process-order': { LAMBDA_ENDPOINT: `http://127.0.0.1:${(lambdaApi.address() as AddressInfo).port}` },
    'notify-customer': {},
  };
  for (const key of FUNCTIONS) {
    const taskRoot = await pkg.taskRoot(key);
    const fn = pkg.functionResource(key);
    running.set(
      key,
      await startPackagedFunction({
        name: fn.FunctionName,
        taskRoot,
        handler: fn.Handler,
        memoryMb: fn.MemorySize,
        nodePath,
        environment: pkg.environment(key, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...overrides[key] }),
      }),
    );
  }
}, 150_000);

afterAll(async () => {
  for (const fn of [...running.values(), ...extra]) await fn.stop().catch(() => undefined);
  for (const server of [lambdaApi, sqs]) if (server) await closeServer(server);
  await receiver?.close();
  await pkg?.remove();
});

describe('packaged functions under the Lambda runtime interface client', () => {
  it('declares the Node.js 24 runtime and a handler file that is in each zip', () => {
    for (const key of FUNCTIONS) {
      const fn = pkg.functionResource(key);
      expect(fn.Runtime).toBe('nodejs24.x');
      expect(fn.Handler).toBe(`functions/${key}.handler`);
    }
  });

  it('carries one trace from API Gateway through SQS and an invoke, every function loaded from its zip', async () => {
    const order = { customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 2 }] };
    const accepted = await invoke('create-order', apiGatewayV2Event({ headers: { traceparent: TRACEPARENT }, body: JSON.stringify(order) }));
    expect(accepted).toMatchObject({ ok: true, payload: { statusCode: 202 } });

    // The message create-order queued, delivered to process-order as the SQS event source mapping would.
    const client = new SQSClient({
      region: REGION,
      endpoint: queueUrl.slice(0, queueUrl.indexOf('/000000000000')),
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const { Messages = [] } = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
        WaitTimeSeconds: 1,
      }),
    );
    client.destroy();
    expect(Messages).toHaveLength(1);
    const processed = await invoke('process-order', { Records: Messages.map(sqsRecordOf) });
    expect(processed).toEqual({ requestId: expect.any(String), ok: true, payload: { batchItemFailures: [] }, responseMs: expect.any(Number) });

    const spans = await waitForConnectedTrace(receiver, TRACE_ID, { count: 6, functions: FUNCTIONS.map((key) => PREFIX + key) }, 10_000).catch(
      (error: Error) => {
        throw new Error(`${error.message}\n${renderTraceTree(spansOfTrace(receiver.spans(), TRACE_ID))}\n${logsOfAll()}`);
      },
    );
    expect(spans.map((span) => `${span.kind} ${span.name}`).sort()).toEqual(
      [
        'SERVER POST /orders',
        `PRODUCER send ${QUEUE}`,
        `CONSUMER process ${QUEUE}`,
        `CLIENT invoke ${PREFIX}notify-customer`,
        `SERVER ${PREFIX}notify-customer`,
        'INTERNAL send order confirmation',
      ].sort(),
    );
    expect(spans.every((span) => span.status !== 'ERROR')).toBe(true);
    // The runtime's own X-Ray header (Lambda-Runtime-Trace-Id) did not take over from the caller's traceparent.
    expect(spans.find((span) => span.name === 'POST /orders')!.parentSpanId).toBe(TRACEPARENT.split('-')[2]);
  });

  it("reports a function's error as Lambda does, with a stack trace in the TypeScript sources, and exports its span", async () => {
    const failed = await invoke('notify-customer', { not: 'an order' }, { clientContext: { custom: { traceparent: TRACEPARENT } } });
    expect(failed.ok).toBe(false);
    if (failed.ok) return;
    expect(failed.errorType).toBe('TypeError');
    expect(failed.error.errorMessage).toBe('notify-customer expects { orderId, customerEmail, itemCount }');
    // NODE_OPTIONS=--enable-source-maps from the template, and the map shipped in the zip.
    // The stack's first frame is the handler's line in functions/notify-customer.ts, not a column of the bundle (the
    // arrow function given to traceInvokeHandler has no name of its own: Node.js says <anonymous>).
    expect(failed.error.trace?.[0]).toBe('TypeError: notify-customer expects { orderId, customerEmail, itemCount }');
    const source = readFileSync(join(__dirname, '..', '..', 'functions', 'notify-customer.ts'), 'utf8').split('\n');
    const line = source.findIndex((text) => text.includes("throw new TypeError('notify-customer expects")) + 1;
    expect(failed.error.trace?.[1]).toMatch(new RegExp(`^ {4}at <anonymous> \\(.*functions/notify-customer\\.ts:${line}:\\d+\\)$`));

    const [span] = await receiver.waitFor(
      (spans) => spans.some((span) => span.traceId === TRACE_ID && span.name === `${PREFIX}notify-customer` && span.status === 'ERROR'),
      10_000,
    );
    expect(span).toBeDefined();
  });

  it("says once in the function's log that spans cannot be exported, and answers as usual", async () => {
    const unreachable = await startNotifyCustomerWith({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}` });

    for (let i = 0; i < 3; i++) {
      const result = await unreachable.invoke({ orderId: `o-${i}`, customerEmail: 'ada@example.com', itemCount: 1 });
      expect(result).toMatchObject({ ok: true, payload: { orderId: `o-${i}`, delivered: true } });
    }
    // The runtime writes console output as "<time>\t<request id>\t<LEVEL>\t<message>" (CloudWatch Logs lines).
    const lines = unreachable
      .logs()
      .split('\n')
      .filter((line) => line.includes('could not export'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\tWARN\ttraced-lambda: could not export 2 span\(s\): connect ECONNREFUSED/);
  });

  it("signs for CloudWatch's OTLP endpoint with the signer bundled in the package", async () => {
    // No network here: the export itself fails (no DNS, or AWS refusing the test credentials), but only after the
    // signer was loaded from the zip and the request signed; a signer missing from the bundle fails before that.
    const toXRay = await startNotifyCustomerWith({ OTEL_EXPORTER_OTLP_TIMEOUT: '1000' });
    expect(pkg.environment('notify-customer').OTEL_EXPORTER_OTLP_ENDPOINT).toBe('https://xray.eu-west-1.amazonaws.com');

    const result = await toXRay.invoke({ orderId: 'o-xray', customerEmail: 'ada@example.com', itemCount: 1 });
    expect(result).toMatchObject({ ok: true, payload: { orderId: 'o-xray', delivered: true } });
    await toXRay.whenIdle(); // the export runs after the response
    const [line] = toXRay
      .logs()
      .split('\n')
      .filter((text) => text.includes('could not export'));
    expect(line).toMatch(/\tWARN\ttraced-lambda: could not export 2 span\(s\): (getaddrinfo|no answer|the OTLP endpoint answered 40[13])/);
    expect(toXRay.logs()).not.toMatch(/Cannot find module|needs AWS credentials/);
  });

  it('registers the process as an internal extension before the runtime asks for its first event', () => {
    for (const key of FUNCTIONS) {
      const { registered, refused } = running.get(key)!.extensions();
      expect(registered).toEqual([{ name: 'traced-lambda-after-response', id: expect.any(String), events: ['INVOKE'] }]);
      expect(refused).toEqual([]);
      expect(pkg.environment(key).NODE_OPTIONS.split(' ')).toEqual(expect.arrayContaining(['--import', './extension/after-response.mjs']));
    }
  });

  it('answers without waiting for a slow collector, and has exported every span before the sandbox may freeze', async () => {
    const collector = await startSlowCollector(400);
    try {
      // One export per invocation, however close they come (shared exports are tested below).
      const fn = await startNotifyCustomerWith(
        { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, TRACED_LAMBDA_EXPORT_STRATEGY: 'invocation' },
        { freeze: true },
      );
      for (let i = 0; i < 3; i++) {
        const orderId = `o-after-${i}`;
        const result = await fn.invoke({ orderId, customerEmail: 'ada@example.com', itemCount: 1 });
        expect(result).toMatchObject({ ok: true, payload: { orderId, delivered: true } });
        // The response came back while the collector was still holding the export...
        expect(result.responseMs).toBeLessThan(200);
        // ...and Lambda could freeze the sandbox only once the export was answered: the spans are there, and the
        // process is stopped (SIGSTOP) until the next invocation.
        expect(await fn.whenIdle()).toBeGreaterThanOrEqual(400);
        expect(collector.spans().filter((span) => span.attributes['faas.invocation_id'] === result.requestId)).toHaveLength(1);
      }
      expect(collector.spans()).toHaveLength(6);
      expect(fn.logs()).not.toMatch(/WARN|ERROR/);
    } finally {
      await collector.close();
    }
  });

  it('shares one export among dense invocations: the sandbox is free at once after each response, and SIGTERM exports what is held', async () => {
    const collector = await startSlowCollector(300);
    try {
      // The template's default strategy (adaptive), with a 5 s delay: invocations idle up to 2.5 s apart count as
      // dense, so that a loaded machine's pauses between them do not make one sparse (the thresholds are unit-tested).
      const fn = await startNotifyCustomerWith(
        { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '5000' },
        { freeze: true },
      );
      // The process's first invocation has no traffic before it: exported on its own, the sandbox held for it.
      const first = await fn.invoke({ orderId: 'o-dense-first', customerEmail: 'ada@example.com', itemCount: 1 });
      expect(first.ok).toBe(true);
      expect(await fn.whenIdle()).toBeGreaterThanOrEqual(300);
      const held: number[] = [];
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        const result = await fn.invoke({ orderId: `o-dense-${i}`, customerEmail: 'ada@example.com', itemCount: 1 });
        expect(result.ok).toBe(true);
        ids.push(result.requestId);
        held.push(await fn.whenIdle());
      }
      // Free long before the collector could have answered one export: nothing was exported.
      expect(Math.max(...held)).toBeLessThan(100);
      expect(collector.spans()).toHaveLength(2);
      // Lambda ends the sandbox: the held spans of all eight invocations leave in the 500 ms it gives.
      await fn.stop({ graceful: true });
      expect(fn.exitStatus()).toEqual({ code: null, signal: 'SIGTERM' });
      for (const id of ids) expect(collector.spans().filter((span) => span.attributes['faas.invocation_id'] === id)).toHaveLength(1);
      expect(collector.spans()).toHaveLength(18);
    } finally {
      await collector.close();
    }
  });

  it("exports before the response when Lambda refuses the registration, and says so in the function's log", async () => {
    const collector = await startSlowCollector(300);
    try {
      const fn = await startNotifyCustomerWith({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint }, { refuseRegistrations: true });
      const result = await fn.invoke({ orderId: 'o-refused', customerEmail: 'ada@example.com', itemCount: 1 });
      expect(result).toMatchObject({ ok: true, payload: { orderId: 'o-refused', delivered: true } });
      expect(result.responseMs).toBeGreaterThanOrEqual(300);
      expect(collector.spans()).toHaveLength(2);
      expect(fn.extensions()).toEqual({ registered: [], refused: [{ name: 'traced-lambda-after-response', errorType: 'Extension.RegistrationServiceOff' }] });
      expect(fn.logs()).toMatch(
        // The kit may have connected while the registration was under way: then it says so as the refusal comes.
        /\tWARN\ttraced-lambda: spans are exported before each response returns (from now on )?\(could not register with the Lambda Extensions API: registration refused \(403 Extension\.RegistrationServiceOff/,
      );
    } finally {
      await collector.close();
    }
  });

  it('exports before the response with TRACED_LAMBDA_EXPORT_AFTER_RESPONSE=false, registering nothing', async () => {
    const collector = await startSlowCollector(300);
    try {
      const fn = await startNotifyCustomerWith({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: 'false' });
      const result = await fn.invoke({ orderId: 'o-off', customerEmail: 'ada@example.com', itemCount: 1 });
      expect(result.responseMs).toBeGreaterThanOrEqual(300);
      expect(collector.spans()).toHaveLength(2);
      expect(fn.extensions()).toEqual({ registered: [], refused: [] });
    } finally {
      await collector.close();
    }
  });

  it('keeps the spans of an export still in flight when Lambda ends the sandbox (SIGTERM, then 500 ms)', async () => {
    const collector = await startSlowCollector(250);
    try {
      const fn = await startNotifyCustomerWith({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint });
      const result = await fn.invoke({ orderId: 'o-shutdown', customerEmail: 'ada@example.com', itemCount: 1 });
      expect(result.ok).toBe(true);
      // Ended right after the response, while the collector holds the export: the process waits for it.
      await fn.stop({ graceful: true });
      expect(fn.exitStatus()).toEqual({ code: null, signal: 'SIGTERM' });
      expect(collector.spans().filter((span) => span.attributes['faas.invocation_id'] === result.requestId)).toHaveLength(1);
      expect(collector.spans()).toHaveLength(2);
    } finally {
      await collector.close();
    }
  });

  it('gives a package nothing but the AWS SDK: a require of anything else fails at init, as on AWS', async () => {
    const taskRoot = join(work, 'probe');
    await mkdir(join(taskRoot, 'functions'), { recursive: true });
    await writeFile(
      join(taskRoot, 'functions', 'sdk.js'),
      "const { SQSClient } = require('@aws-sdk/client-sqs');\nexports.handler = async () => typeof SQSClient;\n",
    );
    await writeFile(join(taskRoot, 'functions', 'unbundled.js'), "require('@opentelemetry/api');\nexports.handler = async () => 'loaded';\n");
    const start = (handler: string) =>
      startPackagedFunction({ name: `probe-${handler}`, taskRoot, handler, nodePath, environment: {} }).then((fn) => (extra.push(fn), fn));

    const sdk = await start('functions/sdk.handler');
    expect(await sdk.invoke({})).toMatchObject({ ok: true, payload: 'function' });

    const unbundled = await start('functions/unbundled.handler');
    await expect(unbundled.invoke({})).rejects.toThrow(/the runtime exited .*after an init error Runtime\.ImportModuleError: .*@opentelemetry\/api/s);
    expect(unbundled.initError()?.errorType).toBe('Runtime.ImportModuleError');

    const misnamed = await start('functions/sdk.handle');
    await expect(misnamed.invoke({})).rejects.toThrow(/init error Runtime\.HandlerNotFound/);
  });
});

describe('an invocation that ends badly, under the Lambda runtime interface client', () => {
  let taskRoot: string;

  beforeAll(async () => {
    // Packaged as serverless package packages the project's functions, beside the extension NODE_OPTIONS loads.
    taskRoot = join(work, 'ending-badly');
    await packageFixture(join(__dirname, 'fixtures', 'ending-badly.ts'), taskRoot);
  }, 60_000);

  /** The function, with the template's environment (as notify-customer has it) and a 2 s timeout Lambda enforces. */
  async function startEndingBadly(overrides: Record<string, string> = {}): Promise<PackagedFunction> {
    const started = await startPackagedFunction({
      name: `${PREFIX}ending-badly`,
      taskRoot,
      handler: 'functions/ending-badly.handler',
      nodePath,
      killAtDeadline: true,
      environment: pkg.environment('notify-customer', { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...overrides }),
    });
    extra.push(started);
    return started;
  }

  /** Invokes `path` under a trace of its own; resolves with the result and that trace's spans once `count` arrived. */
  async function invokeInTrace(fn: PackagedFunction, path: string, count: number) {
    const traceId = randomBytes(16).toString('hex');
    const result = await fn.invoke(apiGatewayV2Event({ method: 'GET', path, headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } }), {
      timeoutMs: 2_000,
    });
    const spans = await receiver
      .waitFor((received) => received.filter((span) => span.traceId === traceId).length >= count, 3_000)
      .then(() => receiver.spans().filter((span) => span.traceId === traceId))
      .catch((error: Error) => {
        throw new Error(`${error.message}: ${renderTraceTree(spansOfTrace(receiver.spans(), traceId))}\n${fn.logs()}`);
      });
    return { result, spans };
  }

  for (const [mode, overrides] of [
    ['after the response', {}],
    ['in the invocation', { TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: 'false' }],
  ] as const) {
    it(`delivers the spans of an invocation that runs past its timeout, exporting ${mode}, in an environment killed at the deadline`, async () => {
      const fn = await startEndingBadly(overrides);

      const { result, spans } = await invokeInTrace(fn, '/slow', 2);

      expect(result).toMatchObject({ ok: false, errorType: 'Sandbox.Timedout' });
      expect(fn.exitStatus()).toEqual({ code: null, signal: 'SIGKILL' });
      const entry = spans.find((span) => span.name === 'GET /slow')!;
      expect(entry.status).toBe('ERROR');
      expect(entry.attributes['error.type']).toBe('timeout');
      expect(entry.events).toEqual([
        expect.objectContaining({
          name: 'exception',
          attributes: expect.objectContaining({
            'exception.type': 'Lambda.Timeout',
            'exception.message': expect.stringMatching(/still running \d+ ms before its deadline \(timeout 2 s\)/),
          }),
        }),
      ]);
      const child = spans.find((span) => span.name === 'call slow dependency')!;
      expect(child).toMatchObject({ status: 'ERROR', parentSpanId: entry.spanId });
      expect(fn.logs()).toMatch(/\tWARN\ttraced-lambda: invocation [0-9a-f-]+: the function was still running/);
      expect(fn.logs()).not.toMatch(/could not export|spans were waiting/);
    });
  }

  for (const [path, errorType, message] of [
    ['/crash', 'TypeError', 'the dependency crashed'],
    ['/reject', 'RangeError', 'nobody handled this rejection'],
  ] as const) {
    it(`delivers the spans of an invocation whose process crashes (${errorType} ${path === '/crash' ? 'thrown in a callback' : 'in a rejection nobody handles'}), and the runtime still exits as Node.js would`, async () => {
      const fn = await startEndingBadly();

      const { result, spans } = await invokeInTrace(fn, path, 2);

      expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError', error: { errorMessage: expect.stringContaining('exit status 1') } });
      expect(fn.exitStatus()).toEqual({ code: 1, signal: null });
      // Node.js printed the error as it does for any uncaught exception, above it a line of the function's or of
      // its own (not one of the kit's minified bundle, tens of kilobytes long).
      expect(fn.logs()).toContain(`${errorType}: ${message}`);
      expect(fn.logs()).toMatch(
        path === '/crash'
          ? /traced-lambda: the uncaught exception below, thrown again once its spans were exported:1\n\(error\) => \{ throw error; \}\n/
          : /node:internal\/process\/promises:\d+\n/,
      );
      expect(
        Math.max(
          ...fn
            .logs()
            .split('\n')
            .map((line) => line.length),
        ),
      ).toBeLessThan(1_000);
      const entry = spans.find((span) => span.name === `GET ${path}`)!;
      expect(entry).toMatchObject({ status: 'ERROR', attributes: expect.objectContaining({ 'error.type': errorType }) });
      expect(entry.events).toEqual([
        expect.objectContaining({
          name: 'exception',
          attributes: expect.objectContaining({
            'exception.type': errorType,
            'exception.message': message,
            'exception.stacktrace': expect.stringContaining(message),
          }),
        }),
      ]);
      expect(spans.find((span) => span.name === 'wait for the dependency')).toMatchObject({ status: 'ERROR', parentSpanId: entry.spanId });
    });
  }

  it('ends the process before a handler that settles after the crash can answer, as Node.js would, its spans delivered first', async () => {
    for (const afterResponse of ['true', 'false']) {
      const fn = await startEndingBadly({ TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: afterResponse });

      const { result, spans } = await invokeInTrace(fn, '/reject-and-answer', 2);

      // Were the handler's answer posted, the runtime client would wait on its next event, and no exit of the
      // process would end before that event came.
      expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError', error: { errorMessage: expect.stringContaining('exit status 1') } });
      expect(fn.exitStatus()).toEqual({ code: 1, signal: null });
      expect(fn.logs()).toContain('RangeError: nobody handled this rejection');
      const entry = spans.find((span) => span.name === 'GET /reject-and-answer')!;
      expect(entry).toMatchObject({ status: 'ERROR', attributes: expect.objectContaining({ 'error.type': 'RangeError' }) });
      expect(spans.find((span) => span.name === 'call the dependency')).toMatchObject({ status: 'UNSET', parentSpanId: entry.spanId });
    }
  });

  it('delivers the spans of an invocation whose code calls process.exit(), sent while the process waits, where no signing is needed', async () => {
    const fn = await startEndingBadly();

    const { result, spans } = await invokeInTrace(fn, '/exit', 2);

    expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError', error: { errorMessage: expect.stringContaining('exit status 3') } });
    expect(fn.exitStatus()).toEqual({ code: 3, signal: null });
    const entry = spans.find((span) => span.name === 'GET /exit')!;
    expect(entry).toMatchObject({ status: 'ERROR', attributes: expect.objectContaining({ 'error.type': 'ProcessExit' }) });
    expect(entry.events).toEqual([
      expect.objectContaining({
        name: 'exception',
        attributes: expect.objectContaining({
          'exception.type': 'ProcessExit',
          'exception.message': 'process.exit(3) was called while the invocation was running',
        }),
      }),
    ]);
    expect(spans.find((span) => span.name === 'wait for the dependency')).toMatchObject({ status: 'ERROR', parentSpanId: entry.spanId });
  });

  it("signs a crash's spans for CloudWatch's endpoint with the bundled signer, and exits within the export's bound", async () => {
    // No network here: the request is signed and tried, then refused or unanswered; the process waits at most
    // OTEL_EXPORTER_OTLP_TIMEOUT for it.
    const fn = await startEndingBadly({
      OTEL_EXPORTER_OTLP_ENDPOINT: pkg.environment('notify-customer').OTEL_EXPORTER_OTLP_ENDPOINT,
      OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
    });

    const invokedAt = performance.now();
    const result = await fn.invoke(apiGatewayV2Event({ method: 'GET', path: '/crash' }), { timeoutMs: 2_000 });

    expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError', error: { errorMessage: expect.stringContaining('exit status 1') } });
    expect(performance.now() - invokedAt).toBeLessThan(1_800);
    expect(fn.logs()).toMatch(
      /\tWARN\ttraced-lambda: the process is crashing \(uncaughtException\); 2 of 2 span\(s\) could not be exported: the endpoint did not accept them within \d+ ms\./,
    );
    expect(fn.logs()).not.toMatch(/SigV4-signed|Cannot find module|needs AWS credentials/);
  });

  it("says in the function's log why process.exit() loses the spans bound for CloudWatch's signed endpoint", async () => {
    // The template's own endpoint: https://xray.<region>.amazonaws.com, every request SigV4-signed.
    const fn = await startEndingBadly({
      OTEL_EXPORTER_OTLP_ENDPOINT: pkg.environment('notify-customer').OTEL_EXPORTER_OTLP_ENDPOINT,
    });

    const result = await fn.invoke(apiGatewayV2Event({ method: 'GET', path: '/exit' }), { timeoutMs: 2_000 });

    expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError' });
    expect(fn.logs()).toMatch(
      /\tWARN\ttraced-lambda: the process is exiting \(code 3\) and its pending spans cannot be exported: requests to this endpoint are SigV4-signed/,
    );
  });
});

/** Another runtime on notify-customer's package, with its template environment and `overrides` over it. */
async function startNotifyCustomerWith(
  overrides: Record<string, string>,
  options: Pick<Parameters<typeof startPackagedFunction>[0], 'freeze' | 'refuseRegistrations'> = {},
): Promise<PackagedFunction> {
  const fn = pkg.functionResource('notify-customer');
  const started = await startPackagedFunction({
    ...options,
    name: fn.FunctionName,
    taskRoot: await pkg.taskRoot('notify-customer'),
    handler: fn.Handler,
    nodePath,
    environment: pkg.environment('notify-customer', overrides),
  });
  extra.push(started);
  return started;
}

async function invoke(key: FunctionKey, event: unknown, options?: Parameters<PackagedFunction['invoke']>[1]): Promise<InvokeResult> {
  const result = await running.get(key)!.invoke(event, options);
  if (!result.ok && key !== 'notify-customer') throw new Error(`${key} failed: ${JSON.stringify(result.error)}\n${logsOfAll()}`);
  return result;
}

function logsOfAll(): string {
  return [...running.values()].map((fn) => `--- ${fn.name}\n${fn.logs()}`).join('\n');
}

/** An SQS message as the event source mapping hands it to the function. */
function sqsRecordOf(message: Message): SQSRecord {
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? '',
    attributes: message.Attributes as unknown as SQSRecord['attributes'],
    messageAttributes: Object.fromEntries(
      Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
        name,
        { dataType: value.DataType!, stringValue: value.StringValue, stringListValues: [], binaryListValues: [] },
      ]),
    ),
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${REGION}:000000000000:${QUEUE}`,
    awsRegion: REGION,
  };
}

/**
 * The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) in front of the running functions:
 * a synchronous invoke passes its ClientContext on and answers with the payload (or X-Amz-Function-Error); an
 * `Event` invoke answers 202 and, as AWS does, drops the ClientContext.
 */
async function startLambdaInvokeApi(find: (name: string) => PackagedFunction | undefined): Promise<Server> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(request.url ?? '');
      const name = match ? decodeURIComponent(match[1]).split(':function:').pop()!.split(':')[0] : '';
      const fn = find(name);
      if (!fn)
        return void response
          .writeHead(404, { 'x-amzn-errortype': 'ResourceNotFoundException' })
          .end(JSON.stringify({ message: `Function not found: ${name}` }));
      const payload = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      const encoded = request.headers['x-amz-client-context'];
      const clientContext = typeof encoded === 'string' ? JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) : undefined;
      if (request.headers['x-amz-invocation-type'] === 'Event') {
        response.writeHead(202).end();
        void fn.invoke(payload).catch(() => undefined);
        return;
      }
      try {
        const result = await fn.invoke(payload, { clientContext });
        if (result.ok) response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result.payload ?? null));
        else response.writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' }).end(JSON.stringify(result.error));
      } catch (error) {
        response.writeHead(502, { 'x-amzn-errortype': 'ServiceException' }).end(JSON.stringify({ message: (error as Error).message }));
      }
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return server;
}
