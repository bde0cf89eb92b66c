import { SpanStatusCode, type DiagLogger } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import middy from '@middy/core';
import { describe, expect, it } from 'vitest';
import { traceHttpHandler, traceSqsRecords, tracingMiddleware, withSpan } from '../../lib';
import { readTelemetryConfig } from '../../lib/config';
import { startTelemetry } from '../../lib/telemetry';
import { apiGatewayV2Event, lambdaContext, MemorySpanExporter, sqsEvent, sqsRecord } from '../../lib/testing';
import { TIMEOUT_EXCEPTION_TYPE } from '../../lib/invocation/timeout-guard';

// Lambda stops a function at its deadline: the guard ends the invocation's open spans shortly before and exports
// them, so that a timed-out invocation still leaves its trace.

/** Tracing that exports into memory, with the guard `marginMs` before each deadline, and what diag said. */
function tracing(marginMs: number) {
  const exporter = new MemorySpanExporter();
  const lines: string[] = [];
  const record = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
  const logger: DiagLogger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug'), verbose: record('verbose') };
  startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'test', TRACED_LAMBDA_TIMEOUT_GUARD_MS: String(marginMs) }), { exporter, logger });
  return { exporter, lines };
}

/** A promise and the function that settles it: a dependency that answers when the test says so. */
function pending<T = void>(): { promise: Promise<T>; settle: (value: T) => void } {
  let settle!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (settle = resolve));
  return { promise, settle };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(read: () => T | undefined, timeoutMs = 3_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('timed out waiting');
    await sleep(5);
  }
}

const exceptionsOf = (span: ReadableSpan) => span.events.filter((event) => event.name === 'exception');

describe('the timeout guard', () => {
  it('ends and exports the open spans of an invocation still running just before its deadline', async () => {
    const { exporter, lines } = tracing(100);
    const dependency = pending();
    const handler = traceHttpHandler(async () => {
      await withSpan('call slow dependency', () => dependency.promise);
      return { statusCode: 200 };
    });

    const started = Date.now();
    const answer = handler(apiGatewayV2Event({ method: 'POST', path: '/orders' }), lambdaContext({ timeoutMs: 400 }));
    const spans = await waitFor(() => (exporter.spans.length >= 2 ? exporter.spans : undefined));
    const firedAfter = Date.now() - started;

    // Exported within the margin: after ~300 ms of the 400 ms timeout, before the deadline.
    expect(firedAfter).toBeGreaterThanOrEqual(290);
    expect(firedAfter).toBeLessThan(400);
    const entry = spans.find((span) => span.name === 'POST /orders')!;
    const child = spans.find((span) => span.name === 'call slow dependency')!;
    expect(entry.status).toEqual({ code: SpanStatusCode.ERROR, message: 'timed out' });
    expect(entry.attributes['error.type']).toBe('timeout');
    const [exception] = exceptionsOf(entry);
    expect(exception.attributes?.['exception.type']).toBe(TIMEOUT_EXCEPTION_TYPE);
    expect(exception.attributes?.['exception.message']).toMatch(/still running \d+ ms before its deadline \(timeout 400 ms\)/);
    // The child is ended in error too, before its parent; only the outermost span carries the exception.
    expect(child.status.code).toBe(SpanStatusCode.ERROR);
    expect(child.attributes['error.type']).toBe('timeout');
    expect(exceptionsOf(child)).toHaveLength(0);
    expect(child.parentSpanContext?.spanId).toBe(entry.spanContext().spanId);
    expect(lines.filter((line) => line.startsWith('warn') && line.includes('still running'))).toHaveLength(1);

    // The handler finishes after all: its answer is unchanged, nothing is ended or exported twice.
    dependency.settle();
    await expect(answer).resolves.toEqual({ statusCode: 200 });
    await sleep(20);
    expect(exporter.spans).toHaveLength(2);
    expect(lines.filter((line) => line.startsWith('error'))).toEqual([]);
  });

  it('exports, after the guard fired, the spans the handler still ended, once', async () => {
    const { exporter } = tracing(100);
    const dependency = pending();
    const handler = traceHttpHandler(async () => {
      await dependency.promise;
      await withSpan('after the guard', () => 'late');
      return { statusCode: 200 };
    });

    const answer = handler(apiGatewayV2Event({ method: 'GET', path: '/late' }), lambdaContext({ timeoutMs: 300 }));
    await waitFor(() => (exporter.spans.length >= 1 ? true : undefined));
    dependency.settle();
    await answer;

    expect(exporter.spans.map((span) => span.name).sort()).toEqual(['GET /late', 'after the guard']);
  });

  it('leaves an invocation that ends in time alone', async () => {
    const { exporter } = tracing(50);
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));

    await handler(apiGatewayV2Event({ method: 'GET', path: '/quick' }), lambdaContext({ timeoutMs: 150 }));
    await sleep(200);

    expect(exporter.spans).toHaveLength(1);
    expect(exporter.spans[0].status.code).toBe(SpanStatusCode.UNSET);
  });

  it("ends every open record span of an SQS batch that runs out of time, and the batch's answer is unchanged", async () => {
    const { exporter } = tracing(100);
    const dependency = pending();
    const handler = traceSqsRecords(() => dependency.promise, { concurrency: 3 });
    const event = sqsEvent(['a', 'b', 'c'].map((body) => sqsRecord({ body, queueName: 'orders' })));

    const answer = handler(event, lambdaContext({ timeoutMs: 300 }));
    const spans = await waitFor(() => (exporter.spans.length >= 3 ? exporter.spans : undefined));

    expect(spans.map((span) => span.name)).toEqual(['process orders', 'process orders', 'process orders']);
    for (const span of spans) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(exceptionsOf(span).map((event) => event.attributes?.['exception.type'])).toEqual([TIMEOUT_EXCEPTION_TYPE]);
    }
    dependency.settle();
    await expect(answer).resolves.toEqual({ batchItemFailures: [] });
    expect(exporter.spans).toHaveLength(3);
  });

  it('guards an invocation the middy middleware traces, and its error after the guard changes nothing', async () => {
    const { exporter, lines } = tracing(100);
    const dependency = pending();
    const handler = middy(async () => {
      await dependency.promise;
      throw new Error('too late');
    }).use(tracingMiddleware({ trigger: 'http' }));

    const answer = handler(apiGatewayV2Event({ method: 'PUT', path: '/late' }), lambdaContext({ timeoutMs: 300 }));
    const [span] = await waitFor(() => (exporter.spans.length >= 1 ? exporter.spans : undefined));

    expect(span.name).toBe('PUT /late');
    expect(exceptionsOf(span).map((event) => event.attributes?.['exception.type'])).toEqual([TIMEOUT_EXCEPTION_TYPE]);
    dependency.settle();
    await expect(answer).rejects.toThrow('too late');
    expect(exporter.spans).toHaveLength(1);
    expect(lines.filter((line) => line.startsWith('error'))).toEqual([]);
  });

  it('guards each of many invocations in a row, and invocations running at once each on its own', async () => {
    const { exporter } = tracing(100);
    const dependencies = new Map<string, ReturnType<typeof pending<void>>>();
    const handler = traceHttpHandler(async (event: APIGatewayProxyEventV2) => {
      const dependency = dependencies.get(event.rawPath);
      if (dependency) await dependency.promise;
      return { statusCode: 200 };
    });
    const timedOut = () => exporter.spans.filter((span) => span.attributes['error.type'] === 'timeout').map((span) => span.name);

    // Quick invocations, then one that runs out of time: the guard of each is re-armed, and the last one fires.
    for (let index = 0; index < 5; index++) await handler(apiGatewayV2Event({ method: 'GET', path: `/quick-${index}` }), lambdaContext({ timeoutMs: 300 }));
    dependencies.set('/slow-alone', pending());
    const alone = handler(apiGatewayV2Event({ method: 'GET', path: '/slow-alone' }), lambdaContext({ timeoutMs: 300 }));
    await waitFor(() => (timedOut().length === 1 ? true : undefined));
    expect(timedOut()).toEqual(['GET /slow-alone']);

    // Three at once, with different timeouts: each is ended at its own time.
    for (const path of ['/a', '/b', '/c']) dependencies.set(path, pending());
    const started = Date.now();
    const atOnce = ['/a', '/b', '/c'].map((path, index) =>
      handler(apiGatewayV2Event({ method: 'GET', path }), lambdaContext({ timeoutMs: 300 + 200 * index })),
    );
    await waitFor(() => (timedOut().length === 2 ? true : undefined));
    expect(Date.now() - started).toBeLessThan(350);
    await waitFor(() => (timedOut().length === 4 ? true : undefined));
    expect(Date.now() - started).toBeGreaterThanOrEqual(590);
    expect(timedOut().slice(1)).toEqual(['GET /a', 'GET /b', 'GET /c']);

    for (const dependency of dependencies.values()) dependency.settle();
    await Promise.all([alone, ...atOnce]);
    expect(exporter.spans.map((span) => span.name).filter((name) => name.startsWith('GET /quick'))).toHaveLength(5);
    expect(exporter.spans).toHaveLength(9);
  });

  it('is off with TRACED_LAMBDA_TIMEOUT_GUARD_MS=0', async () => {
    const { exporter } = tracing(0);
    const dependency = pending();
    const handler = traceHttpHandler(async () => dependency.promise.then(() => ({ statusCode: 200 })));

    const answer = handler(apiGatewayV2Event(), lambdaContext({ timeoutMs: 100 }));
    await sleep(150);
    expect(exporter.spans).toHaveLength(0);
    dependency.settle();
    await answer;
    expect(exporter.spans).toHaveLength(1);
  });

  it('never keeps the process alive: its timer is not one Node.js waits for', async () => {
    tracing(100);
    const dependency = pending();
    const handler = traceHttpHandler(async () => dependency.promise.then(() => ({ statusCode: 200 })));
    const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

    const before = timers();
    const answer = handler(apiGatewayV2Event(), lambdaContext({ timeoutMs: 60_000 }));
    expect(timers()).toBe(before);
    dependency.settle();
    await answer;
  });
});
