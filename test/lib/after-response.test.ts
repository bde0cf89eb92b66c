import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import middy from '@middy/core';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { DiagLogger } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as kit from '../../lib';
import * as afterResponse from '../../lib/after-response';
import type { AfterResponseLink, InvokeEvent } from '../../lib/after-response';
import { apiGatewayV2Event, lambdaContext, sqsEvent, sqsRecord } from '../../lib/testing';

// The kit's side of the after-response export, with the extension (extension/after-response.mjs, tested for real
// under the runtime interface client in test/runtime) replaced by its link object: this file publishes a
// registered link before the kit loads, as the preload does in a function's process, and plays the extension
// by calling onInvoke as the Extensions API's INVOKE events would. (vi.hoisted runs before the imports.)
const link = vi.hoisted(() => {
  const published: AfterResponseLink = { status: 'registered', reason: '', name: 'traced-lambda-after-response' };
  (globalThis as Record<symbol, unknown>)[Symbol.for('traced-lambda.after-response')] = published;
  return published;
});

/** An exporter that records each export and answers it only when the test says so. */
function heldExporter() {
  const exports: { spans: ReadableSpan[]; answer: (result?: ExportResult) => void }[] = [];
  const exporter: SpanExporter = {
    export: (spans, done) => void exports.push({ spans, answer: (result = { code: ExportResultCode.SUCCESS }) => done(result) }),
    shutdown: async () => undefined,
  };
  return { exporter, exports };
}

const recording = () => {
  const lines: string[] = [];
  const record = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  const logger: DiagLogger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug'), verbose: record('verbose') };
  return { lines, logger };
};

const invokeEvent = (requestId: string, inMs = 10_000): InvokeEvent => ({ eventType: 'INVOKE', requestId, deadlineMs: Date.now() + inMs });
/** Long enough for the extension's turn: the export starts a short quiet period after the invocation ends. */
const exportTurn = () => new Promise((resolve) => setTimeout(resolve, 25));
const settledWithin = async (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);

let held: ReturnType<typeof heldExporter>;
let log: ReturnType<typeof recording>;
beforeEach(() => {
  link.status = 'registered';
  held = heldExporter();
  log = recording();
  kit.startTelemetry(kit.readTelemetryConfig({ OTEL_LOG_LEVEL: 'info' }), { exporter: held.exporter, logger: log.logger });
});

describe('export after the response (Lambda extension registered)', () => {
  it('returns the result without waiting for the export, which the extension then does before asking for its next event', async () => {
    const handler = kit.traceHttpHandler(async () => ({ statusCode: 201, body: 'made' }));
    const context = lambdaContext();
    const invoke = link.onInvoke!(invokeEvent(context.awsRequestId));

    // The backend has not answered (nor even been called) when the response is ready.
    await expect(handler(apiGatewayV2Event(), context)).resolves.toEqual({ statusCode: 201, body: 'made' });
    expect(held.exports).toHaveLength(0);
    expect(kit.getTelemetry().exportMode()).toBe('after-response');

    // The extension's turn: one export with the invocation's span, and the event is done only once it is answered.
    await exportTurn();
    expect(held.exports).toHaveLength(1);
    expect(held.exports[0].spans.map((span) => span.attributes['faas.invocation_id'])).toEqual([context.awsRequestId]);
    expect(await settledWithin(invoke, 20)).toBe(false);
    held.exports[0].answer();
    await expect(invoke).resolves.toBeUndefined();
  });

  it('waits for an invocation that is still running when its event arrives, and for one whose event comes late', async () => {
    let finish!: () => void;
    const handler = kit.traceInvokeHandler(() => new Promise<string>((resolve) => (finish = () => resolve('late'))));
    const first = lambdaContext();
    const invoke = link.onInvoke!(invokeEvent(first.awsRequestId));
    const result = handler({}, first);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(held.exports).toHaveLength(0);
    finish();
    expect(await settledWithin(result, 100)).toBe(true);
    await expect(result).resolves.toBe('late');
    await exportTurn();
    held.exports[0].answer();
    await invoke;

    // The runtime may hand the event to the handler before the extension hears of it.
    const second = lambdaContext();
    expect(await settledWithin(kit.traceInvokeHandler(async () => 'early')({}, second), 100)).toBe(true);
    const late = link.onInvoke!(invokeEvent(second.awsRequestId));
    await exportTurn();
    expect(held.exports).toHaveLength(2);
    held.exports[1].answer();
    await late;
  });

  it("passes the handler's error through unchanged and exports its failed span after the response", async () => {
    const failure = new TypeError('bad order');
    const context = lambdaContext();
    const invoke = link.onInvoke!(invokeEvent(context.awsRequestId));
    const result = kit.traceInvokeHandler(async () => Promise.reject(failure))({}, context);
    expect(
      await settledWithin(
        result.catch(() => undefined),
        100,
      ),
    ).toBe(true);
    await expect(result).rejects.toBe(failure);
    await exportTurn();
    expect(held.exports[0].spans[0].status.code).toBe(2);
    held.exports[0].answer();
    await invoke;
  });

  it('hands one export per SQS batch to the extension, with every record span', async () => {
    const context = lambdaContext();
    const invoke = link.onInvoke!(invokeEvent(context.awsRequestId));
    const handler = kit.traceSqsRecords(async () => undefined);
    await expect(handler(sqsEvent([sqsRecord(), sqsRecord(), sqsRecord()]), context)).resolves.toEqual({ batchItemFailures: [] });
    expect(held.exports).toHaveLength(0);
    await exportTurn();
    expect(held.exports).toHaveLength(1);
    expect(held.exports[0].spans).toHaveLength(3);
    held.exports[0].answer();
    await invoke;
  });

  it('hands the export of a middy handler traced by tracingMiddleware to the extension too', async () => {
    const context = lambdaContext();
    const invoke = link.onInvoke!(invokeEvent(context.awsRequestId));
    const handler = middy(async () => ({ statusCode: 202 })).use(kit.tracingMiddleware({ trigger: 'http' }));
    await expect(handler(apiGatewayV2Event(), context)).resolves.toEqual({ statusCode: 202 });
    expect(held.exports).toHaveLength(0);
    await exportTurn();
    expect(held.exports).toHaveLength(1);
    expect(held.exports[0].spans.map((span) => span.attributes['faas.invocation_id'])).toEqual([context.awsRequestId]);
    held.exports[0].answer();
    await invoke;
  });

  it("stops waiting for a backend at the invocation's deadline, and says the spans were not exported", async () => {
    const context = lambdaContext();
    const invoke = link.onInvoke!(invokeEvent(context.awsRequestId, afterResponse.DEADLINE_MARGIN_MS + 100));
    expect(await settledWithin(kit.traceInvokeHandler(async () => 'done')({}, context), 100)).toBe(true);
    const started = Date.now();
    await invoke; // never answered by the backend
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(log.lines.filter((line) => line.includes('could not export'))).toEqual([
      expect.stringMatching(/^warn: traced-lambda: could not export 1 span\(s\): export not finished after \d+ ms/),
    ]);
  });

  it('lets an invocation that no traced wrapper runs go after a grace period, exporting what ended, and says why once', async () => {
    const untraced = new afterResponse.AfterResponseExport(link, (maxWaitMs) => kit.getTelemetry().flush(maxWaitMs), 30);
    kit.startRun('init work').span.end();
    const started = Date.now();
    const done = untraced.onInvoke(invokeEvent('not-wrapped'));
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(held.exports).toHaveLength(1);
    held.exports[0].answer();
    await done;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(log.lines.filter((line) => line.includes('did not run through a traced-lambda wrapper'))).toEqual([
      'warn: traced-lambda: invocation not-wrapped did not run through a traced-lambda wrapper within 30 ms; export the wrapped handler (traceHttpHandler, traceSqsRecords, …) as the function handler.',
    ]);
  });

  it('exports in the invocation again once the extension stopped serving events', async () => {
    link.status = 'stopped';
    const context = lambdaContext();
    const result = kit.traceInvokeHandler(async () => 'done')({}, context);
    await exportTurn();
    // The handler's promise waits for the export, as without an extension.
    expect(held.exports).toHaveLength(1);
    expect(await settledWithin(result, 20)).toBe(false);
    held.exports[0].answer();
    await expect(result).resolves.toBe('done');
    expect(kit.getTelemetry().exportMode()).toBe('in-invocation');
  });

  it("leaves each event unread until the invocation's response is out, then asks the extension to read it", async () => {
    const reads: number[] = [];
    link.readEvent = () => void reads.push(Date.now());
    const context = lambdaContext();
    let finish!: () => void;
    const result = kit.traceInvokeHandler(() => new Promise<string>((resolve) => (finish = () => resolve('done'))))({}, context);
    // A wrapper runs the handler: an event request going out now is held (nothing ended is waiting to be read).
    expect(link.holdEvent?.()).toBe(true);
    finish();
    await result;
    const ended = Date.now();
    // Ended and not read yet: a request going out now must not hold its event.
    expect(link.holdEvent?.()).toBe(false);
    expect(reads).toEqual([]);
    await exportTurn();
    expect(reads).toHaveLength(1);
    expect(reads[0] - ended).toBeGreaterThanOrEqual(1);
    // The extension reads the event: the export follows at once (the response is long out).
    const invoke = link.onInvoke!(invokeEvent(context.awsRequestId));
    await new Promise((resolve) => setImmediate(resolve));
    expect(held.exports).toHaveLength(1);
    held.exports[0].answer();
    await invoke;
    expect(link.holdEvent?.()).toBe(true);
    link.readEvent = undefined;
  });

  it('keeps invocations running at once apart: each event waits for its own invocation', async () => {
    const releases: (() => void)[] = [];
    // Each invocation ends a step at once, then waits to be released.
    const handler = kit.traceInvokeHandler(async () => {
      await kit.withSpan('step', async () => undefined);
      return new Promise<string>((resolve) => releases.push(() => resolve('ok')));
    });
    const [a, b] = [lambdaContext(), lambdaContext()];
    const eventA = link.onInvoke!(invokeEvent(a.awsRequestId));
    const eventB = link.onInvoke!(invokeEvent(b.awsRequestId));
    const resultA = handler({}, a);
    const resultB = handler({}, b);
    await exportTurn();
    releases[1]();
    expect(await settledWithin(resultB, 100)).toBe(true);
    await exportTurn();
    expect(held.exports).toHaveLength(1);
    // B's export holds B's spans only: A's step has ended too, but A is still running.
    const invocationOf = (spans: ReadableSpan[]) => spans.map((span) => span.attributes['faas.invocation_id']).filter((id) => id !== undefined);
    expect(held.exports[0].spans.map((span) => span.name).filter((name) => name === 'step')).toHaveLength(1);
    expect(invocationOf(held.exports[0].spans)).toEqual([b.awsRequestId]);
    held.exports[0].answer();
    await eventB;
    expect(await settledWithin(eventA, 20)).toBe(false);
    releases[0]();
    expect(await settledWithin(resultA, 100)).toBe(true);
    await exportTurn();
    expect(invocationOf(held.exports[1].spans)).toEqual([a.awsRequestId]);
    expect(held.exports[1].spans).toHaveLength(2);
    held.exports[1].answer();
    await eventA;
  });
});

describe('the preload (extension/after-response.mjs)', () => {
  it("loads node:http as the runtime client does, without Node.js's bundled undici (an ES module import loads it: ~15 ms of cold start)", async () => {
    // Outside Lambda the preload registers nothing, but loads what it would register with.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', resolve(__dirname, '../../extension/after-response.mjs'), '-e', 'console.log(JSON.stringify(process.moduleLoadList))'],
      { env: { PATH: process.env.PATH }, timeout: 20_000 },
    );
    const loaded: string[] = JSON.parse(stdout);
    expect(loaded).toContain('NativeModule http');
    expect(loaded.filter((name) => /undici/.test(name))).toEqual([]);
  });
});
