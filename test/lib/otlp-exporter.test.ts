import { diag, ROOT_CONTEXT, type Attributes } from '@opentelemetry/api';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeTracesRequest } from '../../scripts/offline/otlp-receiver';
import { readTelemetryConfig } from '../../lib/config';
import { OTLP_EXPORT_LIMITS } from '../../lib/export/export-limits';
import { InvocationSpanProcessor } from '../../lib/export/invocation-span-processor';
import { OtlpHttpSpanExporter, type OtlpExporterOptions } from '../../lib/export/otlp-exporter';
import { startTelemetry } from '../../lib/telemetry';
import { traceInvokeHandler, withSpan } from '../../lib';
import { lambdaContext, MemorySpanExporter } from '../../lib/testing';

/** Two ended spans of one trace, as the processor hands them to the exporter. */
async function endedSpans(): Promise<ReadableSpan[]> {
  const memory = new MemorySpanExporter();
  const telemetry = startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'exporter-test' }), { exporter: memory });
  telemetry.tracer.startSpan('first').end();
  telemetry.tracer.startSpan('second').end();
  await telemetry.flush();
  return memory.spans;
}

/** `count` ended spans, made by the kit's tracer (flushed as they go: spans outside an invocation are held 4,096 at most). */
async function manySpans(count: number, attributes: (index: number) => Attributes = () => ({})): Promise<ReadableSpan[]> {
  const memory = new MemorySpanExporter();
  const telemetry = startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'exporter-test' }), { exporter: memory });
  for (let index = 0; index < count; index++) {
    telemetry.tracer.startSpan(`span ${index}`, { attributes: { 'messaging.system': 'aws_sqs', ...attributes(index) } }).end();
    if (index % 1000 === 999) await telemetry.flush();
  }
  await telemetry.flush();
  return memory.spans;
}

const exportOnce = (exporter: SpanExporter, spans: ReadableSpan[]) => new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));

describe('OtlpHttpSpanExporter', () => {
  let server: Server;
  let port: number;
  let answer: (request: IncomingMessage, response: ServerResponse) => void;
  const received: { url?: string; headers: IncomingMessage['headers']; body: string; raw: Buffer }[] = [];
  let connections = 0;
  let spans: ReadableSpan[];

  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks);
        received.push({ url: request.url, headers: request.headers, body: raw.toString(), raw });
        answer(request, response);
      });
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    spans = await endedSpans();
  });
  afterEach(() => {
    server.closeAllConnections();
    received.length = 0;
    connections = 0;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('posts OTLP JSON with the configured headers, one request per export on one kept-alive connection', async () => {
    // Arrange
    answer = (_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const exporter = new OtlpHttpSpanExporter({
      url: `http://127.0.0.1:${port}/v1/traces?tenant=orders`,
      headers: { 'x-api-key': 'secret' },
      timeoutMs: 2000,
    });

    // Act
    const results = [await exportOnce(exporter, spans), await exportOnce(exporter, spans)];
    await exporter.shutdown();

    // Assert
    expect(results.map((result) => result.code)).toEqual([0, 0]);
    expect(received).toHaveLength(2);
    expect(connections).toBe(1);
    expect(received[0].url).toBe('/v1/traces?tenant=orders');
    expect(received[0].headers).toMatchObject({ 'content-type': 'application/json', 'x-api-key': 'secret' });
    const [resourceSpans] = JSON.parse(received[0].body).resourceSpans;
    const exported = resourceSpans.scopeSpans[0].spans as { name: string; traceId: string }[];
    expect(exported.map((span) => span.name)).toEqual(['first', 'second']);
    expect(exported[0].traceId).toBe(spans[0].spanContext().traceId);
  });

  it('reports a backend that answers an error status as a failed export', async () => {
    answer = (_request, response) => response.writeHead(503).end('overloaded');
    const exporter = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: {}, timeoutMs: 2000 });

    const result = await exportOnce(exporter, spans);
    await exporter.shutdown();

    expect(result.code).toBe(1);
    expect(result.error?.message).toBe('the OTLP endpoint answered 503');
  });

  it('gives up at its deadline on a backend that keeps the answer coming byte by byte', async () => {
    // A socket idle timeout never fires here: bytes keep arriving. Only a deadline for the whole exchange does.
    answer = (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      const drip = setInterval(() => response.write(' '), 20);
      response.on('close', () => clearInterval(drip));
    };
    const exporter = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: {}, timeoutMs: 150 });

    const result = await exportOnce(exporter, spans);
    await exporter.shutdown();

    expect(result.code).toBe(1);
    expect(result.error?.message).toBe('no answer from the OTLP endpoint within 150 ms');
    expect(exporter.settlesWithinMs).toBe(150);
  });

  it('reports a header HTTP cannot carry as a failed export, and nothing fires afterwards', async () => {
    // A header name with a space, as a mistyped OTEL_EXPORTER_OTLP_HEADERS gives: Node refuses the request.
    const exporter = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: { 'api key': 'x' }, timeoutMs: 50 });

    const result = await exportOnce(exporter, spans);
    // Past the deadline: a timer left armed would fire here and fail the run with an uncaught error.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await exporter.shutdown();

    expect(result.code).toBe(1);
    expect(result.error?.message).toMatch(/Header name/);
    expect(received).toHaveLength(0);
  });

  it('reports a refused connection as a failed export', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const exporter = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${closedPort}/v1/traces`, headers: {}, timeoutMs: 2000 });

    const result = await exportOnce(exporter, spans);
    await exporter.shutdown();

    expect(result.code).toBe(1);
    expect(result.error?.message).toMatch(/ECONNREFUSED/);
  });

  it('sends the exports of as many invocations at once as the process may run (Managed Instances), none queued behind another', async () => {
    // Answered only once every export is in: an export queued behind another would never arrive.
    const held: ServerResponse[] = [];
    answer = (_request, response) => {
      held.push(response);
      if (held.length === 12) for (const waiting of held) waiting.writeHead(200).end('{}');
    };
    const narrow = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: {}, timeoutMs: 300 });
    const wide = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: {}, timeoutMs: 2000, concurrency: 12 });

    const one = await Promise.all(Array.from({ length: 12 }, () => exportOnce(narrow, spans)));
    await narrow.shutdown();
    held.length = 0;
    received.length = 0;
    const many = await Promise.all(Array.from({ length: 12 }, () => exportOnce(wide, spans)));
    await wide.shutdown();

    // Four sockets by default: the rest wait, and time out.
    expect(one.filter((result) => result.code === 0)).toHaveLength(0);
    expect(many.map((result) => result.code)).toEqual(Array(12).fill(0));
    expect(received).toHaveLength(12);
  });

  describe('within the limits of one request to the endpoint', () => {
    const { maxSpansPerRequest, maxRequestBytes, maxSpanBytes } = OTLP_EXPORT_LIMITS;
    const accept = (_request: IncomingMessage, response: ServerResponse) => response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const uncompressed = (request: (typeof received)[number]) => (request.headers['content-encoding'] === 'gzip' ? gunzipSync(request.raw) : request.raw);
    /** The request's OTLP/JSON body as it was sent. */
    const otlpBody = (request: (typeof received)[number]) => JSON.parse(uncompressed(request).toString('utf8'));
    const otlpSpans = (request: (typeof received)[number]) =>
      (otlpBody(request).resourceSpans as { scopeSpans: { spans: Record<string, any>[] }[] }[]).flatMap((group) =>
        group.scopeSpans.flatMap((scope) => scope.spans),
      );
    /** Every span decoded as the project's receiver decodes them, with well-formed ids. */
    const arrived = () => {
      const spans = received.flatMap((request) => decodeTracesRequest(otlpBody(request)));
      for (const span of spans) {
        expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
        expect(span.resource['service.name']).toBe('exporter-test');
      }
      return spans;
    };
    const spanIds = (spans: { spanId: string }[]) => spans.map((span) => span.spanId).sort();
    const expectEachRequestWithinLimits = () => {
      for (const request of received) {
        expect(uncompressed(request).byteLength).toBeLessThanOrEqual(maxRequestBytes);
        expect(otlpSpans(request).length).toBeLessThanOrEqual(maxSpansPerRequest);
      }
    };
    /** Several requests, each within the limits, and every span arrived once. */
    const expectSplitAndWhole = (spans: ReadableSpan[]) => {
      expect(received.length).toBeGreaterThan(1);
      expectEachRequestWithinLimits();
      const whole = arrived();
      expect(spanIds(whole)).toEqual(spanIds(spans.map((span) => span.spanContext())));
      return whole;
    };
    /** Exports through a new exporter to the receiver, and closes it. */
    const exportToReceiver = async (spans: ReadableSpan[], options: Partial<OtlpExporterOptions> = {}) => {
      const exporter = new OtlpHttpSpanExporter({ url: `http://127.0.0.1:${port}/v1/traces`, headers: {}, timeoutMs: 10_000, ...options });
      const result = await exportOnce(exporter, spans);
      await exporter.shutdown();
      return result;
    };
    /** 3,000 spans of about 3 KB each: some 9 MB in one request. */
    const largeSpans = () => manySpans(3_000, (index) => ({ 'order.body': `${index}:`.padEnd(2_500, 'x') }));
    afterEach(() => vi.restoreAllMocks());

    it('splits an export of more spans than one request may carry, and every span arrives once', async () => {
      // Arrange
      answer = accept;
      const many = await manySpans(12_000);

      // Act
      const result = await exportToReceiver(many);

      // Assert
      expect(result.code).toBe(0);
      expectSplitAndWhole(many);
    });

    it('delivers an invocation of 12,000 spans whole, in requests within the limits, at its end', async () => {
      // Arrange: the kit as a function runs it, exporting to the receiver when the invocation ends.
      answer = accept;
      startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'exporter-test', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }));
      const handler = traceInvokeHandler(async () => {
        for (let index = 0; index < 11_999; index++) await withSpan(`step ${index}`, () => index);
        return 'done';
      });

      // Act
      const result = await handler({}, lambdaContext());

      // Assert
      expect(result).toBe('done');
      expect(received.length).toBeGreaterThan(1);
      expectEachRequestWithinLimits();
      const whole = arrived();
      expect(whole).toHaveLength(12_000);
      expect(new Set(whole.map((span) => span.spanId)).size).toBe(12_000);
      expect(new Set(whole.map((span) => span.traceId)).size).toBe(1);
    });

    it('splits an export of fewer spans than the count limit whose body is over the byte limit', async () => {
      // Arrange
      answer = accept;
      const many = await largeSpans();

      // Act
      const result = await exportToReceiver(many);

      // Assert
      expect(result.code).toBe(0);
      expect(expectSplitAndWhole(many).every((span) => (span.attributes['order.body'] as string).length === 2_500)).toBe(true);
    });

    it('measures the byte limit on the uncompressed body when the requests are gzipped', async () => {
      // Arrange: some 9 MB that compress to far less than 5 MB, yet the endpoint counts them uncompressed.
      answer = accept;
      const many = await largeSpans();
      const { otlpCompression } = readTelemetryConfig({ OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' });

      // Act
      const result = await exportToReceiver(many, { compression: otlpCompression });

      // Assert
      expect(result.code).toBe(0);
      expect(received.every((request) => request.headers['content-encoding'] === 'gzip' && request.raw.byteLength < maxRequestBytes / 10)).toBe(true);
      expectSplitAndWhole(many);
    });

    it('trims a span over the span limit, leaves out one that cannot fit, and says so in one line', async () => {
      // Arrange
      answer = accept;
      const memory = new MemorySpanExporter();
      const telemetry = startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'exporter-test', OTEL_SPAN_EVENT_COUNT_LIMIT: '5000' }), { exporter: memory });
      telemetry.tracer.startSpan('small').end();
      telemetry.tracer.startSpan('huge attribute', { attributes: { 'order.body': 'x'.repeat(300_000), 'order.id': 'o-1' } }).end();
      const withEvents = telemetry.tracer.startSpan('many events');
      for (let index = 0; index < 5_000; index++) withEvents.addEvent(`retry ${index}`, { 'retry.reason': 'the downstream service was busy' });
      withEvents.end();
      telemetry.tracer.startSpan('y'.repeat(300_000)).end();
      await telemetry.flush();
      const spans = memory.spans;
      const warn = vi.spyOn(diag, 'warn').mockImplementation(() => undefined);

      // Act
      const result = await exportToReceiver(spans);

      // Assert
      expect(result.code).toBe(0);
      const sent = received.flatMap(otlpSpans);
      expect(sent.map((span) => span.name)).toEqual(['small', 'huge attribute', 'many events']);
      for (const span of sent) expect(Buffer.byteLength(JSON.stringify(span))).toBeLessThanOrEqual(maxSpanBytes);
      const [, hugeAttribute, manyEvents] = arrived();
      expect(hugeAttribute.attributes).toEqual({ 'order.body': 'x'.repeat(4096), 'order.id': 'o-1' });
      // The newest events are kept, as the SDK's event limit keeps them.
      const kept = manyEvents.events ?? [];
      expect(kept.length).toBeGreaterThan(0);
      expect(kept.length).toBeLessThan(5_000);
      expect(kept.at(-1)?.name).toBe('retry 4999');
      expect(sent[2].droppedEventsCount).toBe(5_000 - kept.length);
      // The SDK's own spans are left as they were.
      expect((spans[1].attributes['order.body'] as string).length).toBe(300_000);
      expect(spans[2].events).toHaveLength(5_000);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(/^traced-lambda: 3 span\(s\) over the endpoint's limit of 200000 bytes per span: /);
      expect(warn.mock.calls[0][0]).toContain('"huge attribute" trimmed (values cut to 4096 characters)');
      expect(warn.mock.calls[0][0]).toMatch(/"many events" trimmed \(\d+ event\(s\) dropped\)/);
      expect(warn.mock.calls[0][0]).toContain(`"${'y'.repeat(64)}…" left out (too large even trimmed)`);
    });

    it('reports a request that fails among several as a failed export, with the spans it held', async () => {
      // Arrange: the second request is refused.
      let requests = 0;
      answer = (request, response) => (++requests === 2 ? response.writeHead(503).end('overloaded') : accept(request, response));
      const many = await manySpans(12_000);

      // Act
      const result = await exportToReceiver(many);

      // Assert
      expect(result.code).toBe(1);
      expect(received).toHaveLength(2);
      const refused = otlpSpans(received[1]).length;
      expect(result.error?.message).toBe(`${refused} of 12000 spans were not accepted (1 of 2 requests failed): the OTLP endpoint answered 503`);
    });
  });
});

describe('InvocationSpanProcessor wait', () => {
  let spans: ReadableSpan[];
  beforeAll(async () => {
    spans = await endedSpans();
  });
  afterEach(() => vi.restoreAllMocks());

  /** An exporter that answers on the next turn and says how soon it always settles. */
  const answeringExporter = (settlesWithinMs: number) => ({
    settlesWithinMs,
    export: (_spans: ReadableSpan[], done: (result: ExportResult) => void) => void setImmediate(() => done({ code: 0 })),
    shutdown: async () => undefined,
  });

  it('arms no timer of its own when the exporter settles sooner than the invocation can wait', async () => {
    const processor = new InvocationSpanProcessor(() => answeringExporter(2000), 2000);
    // Spans are kept from their start (ended ones here): outside any invocation, so any flush exports them.
    spans.forEach((span) => processor.onStart(span as never, ROOT_CONTEXT));
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');

    await processor.flushWithin(2950);

    expect(setTimeoutSpy).not.toHaveBeenCalled();
  });

  it('bounds the wait itself when the invocation has less time left than the exporter may take', async () => {
    const processor = new InvocationSpanProcessor(() => answeringExporter(2000), 2000);
    // Spans are kept from their start (ended ones here): outside any invocation, so any flush exports them.
    spans.forEach((span) => processor.onStart(span as never, ROOT_CONTEXT));
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');

    await processor.flushWithin(300);

    expect(setTimeoutSpy).toHaveBeenCalledWith(expect.any(Function), 300);
  });
});
