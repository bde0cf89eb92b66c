import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import middy from '@middy/core';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { DiagLogger } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as kit from '../../lib';
import * as afterResponse from '../../lib/export/after-response';
import type { AfterResponseLink, InvokeEvent } from '../../lib/export/after-response';
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
  // Each invocation exports its own spans here; shared exports (the default's batching) are tested below.
  kit.startTelemetry(kit.readTelemetryConfig({ OTEL_LOG_LEVEL: 'info', TRACED_LAMBDA_EXPORT_STRATEGY: 'invocation' }), {
    exporter: held.exporter,
    logger: log.logger,
  });
});

/** Runs one traced invocation as Lambda and the extension would, and resolves once its INVOKE event is done. */
async function invocation(name: string, failure?: Error): Promise<{ id: string; exportsAfter: number }> {
  const context = lambdaContext();
  const before = held.exports.length;
  const invoke = link.onInvoke!(invokeEvent(context.awsRequestId));
  const result = kit.traceInvokeHandler(async () => {
    if (failure) throw failure;
    return name;
  })({}, context);
  if (failure) await expect(result).rejects.toBe(failure);
  else await expect(result).resolves.toBe(name);
  // The extension's turn: an export (answered at once here), or nothing when the spans are held.
  await exportTurn();
  for (const pending of held.exports.slice(before)) pending.answer();
  await invoke;
  return { id: context.awsRequestId, exportsAfter: held.exports.length };
}

describe('shared exports: spans of several invocations in one export (TRACED_LAMBDA_EXPORT_STRATEGY)', () => {
  const start = (env: Record<string, string>) =>
    kit.startTelemetry(kit.readTelemetryConfig({ OTEL_LOG_LEVEL: 'info', ...env }), { exporter: held.exporter, logger: log.logger });

  it('adaptive (the default): dense invocations are held and leave together once the first held has waited the delay', async () => {
    start({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '300' });
    // The first invocation of a process has no traffic behind it: exported on its own.
    const first = await invocation('first');
    expect(first.exportsAfter).toBe(1);
    // Then back to back: each event is done without an export (the sandbox may freeze at once).
    const dense: string[] = [];
    for (let index = 0; index < 4; index++) {
      const { id, exportsAfter } = await invocation(`dense ${index}`);
      expect(exportsAfter).toBe(1);
      dense.push(id);
    }
    // Past the delay, the next invocation's end exports everything held, with its own span, in one request.
    await new Promise((resolve) => setTimeout(resolve, 320));
    const last = await invocation('last');
    expect(last.exportsAfter).toBe(2);
    expect(held.exports[1].spans.map((span) => span.attributes['faas.invocation_id']).sort()).toEqual([...dense, last.id].sort());
  });

  it('adaptive: an invocation that failed is exported at once, with the spans held before it', async () => {
    start({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60000' });
    await invocation('first');
    const dense = await invocation('dense');
    expect(dense.exportsAfter).toBe(1);
    const failed = await invocation('failed', new TypeError('bad order'));
    expect(failed.exportsAfter).toBe(2);
    expect(held.exports[1].spans.map((span) => span.attributes['faas.invocation_id']).sort()).toEqual([dense.id, failed.id].sort());
  });

  it('adaptive: sparse invocations (idle longer than half the delay) are each exported after their response', async () => {
    start({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60' });
    for (let index = 1; index <= 3; index++) {
      const { exportsAfter } = await invocation(`sparse ${index}`);
      expect(exportsAfter).toBe(index);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('batched: held however sparse, until the delay; invocation: one export each however dense', async () => {
    start({ TRACED_LAMBDA_EXPORT_STRATEGY: 'batched', TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '150' });
    expect((await invocation('one')).exportsAfter).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await invocation('two')).exportsAfter).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await invocation('three')).exportsAfter).toBe(1);
    expect(held.exports[0].spans).toHaveLength(3);

    held.exports.length = 0;
    start({ TRACED_LAMBDA_EXPORT_STRATEGY: 'invocation' });
    for (let index = 1; index <= 3; index++) expect((await invocation(`each ${index}`)).exportsAfter).toBe(index);
  });

  it('a held span is never lost: the timeout guard and a flush of everything (SIGTERM, a crash) export it', async () => {
    start({ TRACED_LAMBDA_EXPORT_STRATEGY: 'batched' });
    const { id } = await invocation('held');
    expect(held.exports).toHaveLength(0);
    const flushed = kit.getTelemetry().flush(1_000);
    expect(held.exports).toHaveLength(1);
    expect(held.exports[0].spans.map((span) => span.attributes['faas.invocation_id'])).toEqual([id]);
    held.exports[0].answer();
    await flushed;
  });

  it('says which strategy a bad TRACED_LAMBDA_EXPORT_STRATEGY or delay falls back to', () => {
    const config = kit.readTelemetryConfig({ TRACED_LAMBDA_EXPORT_STRATEGY: 'sometimes', TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '-5' });
    expect(config.exportPolicy).toEqual({ strategy: 'adaptive', maxDelayMs: 1_000, maxBatchSpans: 2_048 });
    expect(config.warnings).toEqual([
      'TRACED_LAMBDA_EXPORT_STRATEGY="sometimes" is not one of adaptive, invocation, batched; using "adaptive".',
      'TRACED_LAMBDA_EXPORT_MAX_DELAY_MS="-5" is not a positive whole number of milliseconds; using 1000.',
    ]);
  });
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

  it('reads the event of an invocation whose spans are held right after the runtime has posted its response, in the same turn of the event loop, with no timer', async () => {
    kit.startTelemetry(kit.readTelemetryConfig({ TRACED_LAMBDA_EXPORT_STRATEGY: 'batched' }), { exporter: held.exporter, logger: log.logger });
    let posted = false;
    // The event loop's turns, counted by an immediate that queues itself again (it runs first in each check phase).
    let turn = 0;
    let counting = true;
    const countTurns = () => {
      turn++;
      if (counting) setImmediate(countTurns);
    };
    const reads: { posted: boolean; turn: number }[] = [];
    link.readEvent = () => void reads.push({ posted, turn });
    // No timer may fire meanwhile: the read must not depend on one.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const context = lambdaContext();
      setImmediate(countTurns);
      await kit.traceInvokeHandler(async () => 'done')({}, context);
      // As the runtime interface client does: the response is posted from an immediate queued once the handler's
      // promise has settled.
      await new Promise((resolve) => setImmediate(resolve));
      posted = true;
      const postedInTurn = turn;
      expect(reads).toEqual([]);
      await new Promise((resolve) => setImmediate(resolve));
      // Read after the post, before the loop turns again: the process does not go round once more for it.
      expect(reads).toEqual([{ posted: true, turn: postedInTurn }]);
      // The extension reads the event: the spans are held, nothing is exported.
      await link.onInvoke!(invokeEvent(context.awsRequestId));
      expect(held.exports).toHaveLength(0);
    } finally {
      counting = false;
      vi.useRealTimers();
      link.readEvent = undefined;
    }
  });

  it("starts an export only after the runtime has posted the response, even when the post comes long after the handler's end (a cold start's first response)", async () => {
    const order: string[] = [];
    // The extension reads the held event when asked, and its INVOKE goes to the kit (as the preload does).
    link.readEvent = () => void link.onInvoke!(invokeEvent(context.awsRequestId));
    const exportOf = held.exporter.export.bind(held.exporter);
    held.exporter.export = (spans, done) => {
      order.push('export');
      exportOf(spans, done);
    };
    const context = lambdaContext();
    try {
      // The handler's last step resumes from an immediate, as many do (I/O callbacks, stream ends): the runtime's
      // post then waits for the loop's next round of immediates, after its timers.
      const result = kit.traceInvokeHandler(async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return 'done';
      })({}, context);
      await result.then(() => {
        // On a cold start the code between the handler's end and the runtime's post runs for the first time: here
        // 10 ms of it, then the post, from an immediate queued once the handler's promise has settled.
        const until = performance.now() + 10;
        while (performance.now() < until);
        setImmediate(() => order.push('response posted'));
      });
      await exportTurn();
      expect(order).toEqual(['response posted', 'export']);
      held.exports[0].answer();
    } finally {
      link.readEvent = undefined;
    }
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

describe('the export scheduler owns the connection to the extension', () => {
  it('connects when a telemetry set-up starts, not when the kit loads, and lets go when the set-up is replaced', async () => {
    const listeners = process.listenerCount('SIGTERM');
    link.onInvoke = undefined;
    // Loaded afresh, as in a new process: nothing is connected, no SIGTERM listener installed.
    vi.resetModules();
    const fresh = await import('../../lib');
    expect(link.onInvoke).toBeUndefined();
    expect(process.listenerCount('SIGTERM')).toBe(listeners);
    // The preload waits on `connected` when an event came first.
    const connected = vi.fn();
    link.connected = connected;
    try {
      fresh.startTelemetry(fresh.readTelemetryConfig({}), { exporter: held.exporter, logger: log.logger });
      const firstHook = link.onInvoke;
      expect(firstHook).toBeTypeOf('function');
      expect(connected).toHaveBeenCalledOnce();
      expect(process.listenerCount('SIGTERM')).toBe(listeners + 1);
      expect(fresh.getTelemetry().exportMode()).toBe('after-response');

      fresh.startTelemetry(fresh.readTelemetryConfig({}), { exporter: held.exporter, logger: log.logger });
      expect(link.onInvoke).toBeTypeOf('function');
      expect(link.onInvoke).not.toBe(firstHook);
      expect(process.listenerCount('SIGTERM')).toBe(listeners + 1);
    } finally {
      link.connected = undefined;
      fresh.getTelemetry().exports.close();
    }
    expect(process.listenerCount('SIGTERM')).toBe(listeners);
  });
});

describe('the preload (extension/after-response.mjs)', () => {
  it("loads node:net only: not node:http, nor Node.js's bundled undici (an ES module import of a built-in loads it: ~15 ms of cold start)", async () => {
    // Outside Lambda the preload registers nothing, but loads what it would register with.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', resolve(__dirname, '../../extension/after-response.mjs'), '-e', 'console.log(JSON.stringify(process.moduleLoadList))'],
      { env: { PATH: process.env.PATH }, timeout: 20_000 },
    );
    const loaded: string[] = JSON.parse(stdout);
    expect(loaded).toContain('NativeModule net');
    expect(loaded).not.toContain('NativeModule http');
    expect(loaded.filter((name) => /undici/.test(name))).toEqual([]);
  });
});
