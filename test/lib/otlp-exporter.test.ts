import { ROOT_CONTEXT } from '@opentelemetry/api';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { readTelemetryConfig } from '../../lib/config';
import { InvocationSpanProcessor } from '../../lib/invocation-span-processor';
import { OtlpHttpSpanExporter } from '../../lib/otlp-exporter';
import { startTelemetry } from '../../lib/telemetry';
import { MemorySpanExporter } from '../../lib/testing';

/** Two ended spans of one trace, as the processor hands them to the exporter. */
async function endedSpans(): Promise<ReadableSpan[]> {
  const memory = new MemorySpanExporter();
  const telemetry = startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'exporter-test' }), { exporter: memory });
  telemetry.tracer.startSpan('first').end();
  telemetry.tracer.startSpan('second').end();
  await telemetry.flush();
  return memory.spans;
}

const exportOnce = (exporter: SpanExporter, spans: ReadableSpan[]) => new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));

describe('OtlpHttpSpanExporter', () => {
  let server: Server;
  let port: number;
  let answer: (request: IncomingMessage, response: ServerResponse) => void;
  const received: { url?: string; headers: IncomingMessage['headers']; body: string }[] = [];
  let connections = 0;
  let spans: ReadableSpan[];

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push({ url: request.url, headers: request.headers, body });
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
