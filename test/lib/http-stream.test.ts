import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { httpResponseStream, traceHttpStreamHandler, type ResponseStream } from '../../lib';
import { apiGatewayV1Event, apiGatewayV2Event, captureSpans, lambdaContext, responseStream, type SpanCapture } from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

let capture: SpanCapture;
beforeEach(() => {
  capture = captureSpans();
});
afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

/** A Function URL's event: HTTP API v2's shape, with the `$default` route key. */
const functionUrlEvent = (headers: Record<string, string> = {}) => ({
  ...apiGatewayV2Event({ method: 'GET', path: '/report', headers }),
  routeKey: '$default',
});

/** The span's end, in milliseconds since the epoch. */
const endedAtMs = (span: ReadableSpan) => span.endTime[0] * 1000 + span.endTime[1] / 1e6;

describe('traceHttpStreamHandler', () => {
  it("continues the caller's trace with a SERVER span, its status code from the stream's metadata, the bytes unchanged", async () => {
    // Arrange
    const handler = traceHttpStreamHandler(
      async (_event, stream) => {
        const http = httpResponseStream(stream, { statusCode: 201, headers: { 'content-type': 'text/csv' } });
        http.write('id,total\n');
        http.write(Buffer.from([0x31, 0x2c, 0x00, 0xff, 0x0a]));
        http.end('2,5\n');
      },
      { route: '/report' },
    );
    const stream = responseStream();

    // Act
    const result = await handler(functionUrlEvent({ traceparent: TRACEPARENT, host: 'abc.lambda-url.eu-west-1.on.aws' }), stream, lambdaContext());

    // Assert
    expect(result).toBeUndefined();
    expect(stream.body()).toEqual(Buffer.concat([Buffer.from('id,total\n'), Buffer.from([0x31, 0x2c, 0x00, 0xff, 0x0a]), Buffer.from('2,5\n')]));
    expect(stream.metadata()).toEqual({ statusCode: 201, headers: { 'content-type': 'text/csv' } });
    expect(stream.contentType).toBe('application/vnd.awslambda.http-integration-response');
    const span = capture.span('GET /report');
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.attributes).toMatchObject({
      'faas.trigger': 'http',
      'http.request.method': 'GET',
      'http.route': '/report',
      'url.path': '/report',
      'server.address': 'abc.lambda-url.eu-west-1.on.aws',
      'http.response.status_code': 201,
      'traced_lambda.parent.source': 'http-headers',
    });
  });

  it('ends the span when the stream ends, not when the handler returns, and ends the invocation after it', async () => {
    // Arrange: the handler returns with its pipeline still writing, as `void pipeline(...)` would leave it.
    const events: string[] = [];
    const ended = vi.spyOn(capture.telemetry.exports, 'ended');
    ended.mockImplementation(() => void events.push('invocation ended'));
    let pipelineDone: Promise<void> | undefined;
    const handler = traceHttpStreamHandler(async (_event, stream) => {
      async function* rows() {
        yield 'a\n';
        await sleep(40);
        yield 'b\n';
      }
      pipelineDone = pipeline(Readable.from(rows()), stream);
      events.push('handler returned');
    });
    const stream = responseStream();
    let finishedAt = 0;
    stream.on('finish', () => {
      finishedAt = Date.now();
      events.push('stream finished');
    });

    // Act
    await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), stream, lambdaContext());
    await pipelineDone;

    // Assert
    expect(events).toEqual(['handler returned', 'stream finished', 'invocation ended']);
    expect(stream.text()).toBe('a\nb\n');
    const span = capture.span('GET /report');
    expect(endedAtMs(span)).toBeGreaterThanOrEqual(finishedAt - 1);
    expect(span.duration[0] * 1000 + span.duration[1] / 1e6).toBeGreaterThanOrEqual(35);
    expect(span.attributes['http.response.status_code']).toBe(200);
  });

  it('ends the span in error with the stream error when the stream fails, the handler having returned', async () => {
    // Arrange
    const broken = new Error('upstream closed the connection');
    const handler = traceHttpStreamHandler(async (_event, stream) => {
      httpResponseStream(stream, { statusCode: 200 }).write('partial');
      setTimeout(() => stream.destroy(broken), 10);
    });
    const stream = responseStream();

    // Act
    const result = await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), stream, lambdaContext());

    // Assert
    expect(result).toBeUndefined();
    expect(stream.text()).toBe('partial');
    expect(stream.failure).toBe(broken);
    const span = capture.span('GET /report');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'upstream closed the connection' });
    expect(span.attributes['error.type']).toBe('Error');
    expect(span.attributes['http.response.status_code']).toBe(200);
    expect(span.events.map((event) => event.name)).toEqual(['exception']);
  });

  it('ends the span in error when the stream is destroyed before it finished', async () => {
    // Arrange
    const handler = traceHttpStreamHandler(async (_event, stream) => {
      stream.write('half');
      stream.destroy();
    });

    // Act
    await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), responseStream(), lambdaContext());

    // Assert
    const span = capture.span('GET /report');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.type']).toBe('ResponseStreamClosedError');
  });

  it("rethrows the handler's error unchanged, and ends the span with it while the stream is still open", async () => {
    // Arrange: the runtime ends the stream with the error only once the rejection reaches it.
    const failure = new TypeError('report not found');
    const handler = traceHttpStreamHandler(async (_event, stream) => {
      stream.write('{"rows":[');
      throw failure;
    });
    const stream = responseStream();

    // Act
    const outcome = handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), stream, lambdaContext());

    // Assert
    await expect(outcome).rejects.toBe(failure);
    expect(stream.writableEnded).toBe(false);
    expect(stream.text()).toBe('{"rows":[');
    const span = capture.span('GET /report');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'report not found' });
    expect(span.attributes['error.type']).toBe('TypeError');
  });

  it('runs the handler unchanged with tracing off (OTEL_SDK_DISABLED), its bytes as written', async () => {
    // Arrange
    capture = captureSpans({ OTEL_SDK_DISABLED: 'true' });
    const handler = traceHttpStreamHandler(async (_event, stream) => {
      httpResponseStream(stream, { statusCode: 200 }).write('a');
      setTimeout(() => stream.end('b'), 5);
    });
    const stream = responseStream();

    // Act
    await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), stream, lambdaContext());

    // Assert
    expect(stream.text()).toBe('ab');
    expect(stream.metadata()).toEqual({ statusCode: 200 });
    expect(capture.spans()).toEqual([]);
  });

  it('marks a 5xx response in error', async () => {
    // Arrange
    const handler = traceHttpStreamHandler(async (_event, stream) => {
      httpResponseStream(stream, { statusCode: 503 }).end();
    });

    // Act
    await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), responseStream(), lambdaContext());

    // Assert
    const span = capture.span('GET /report');
    expect(span.attributes['http.response.status_code']).toBe(503);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('works on a stream shaped as the runtime gives it: a plain object of bound Writable methods', async () => {
    // Arrange: the runtime interface client hands the handler such an object, not a Writable instance.
    const inner = responseStream();
    const stream = {
      write: inner.write.bind(inner),
      end: inner.end.bind(inner),
      on: inner.on.bind(inner),
      off: inner.off.bind(inner),
      listenerCount: inner.listenerCount.bind(inner),
      setContentType: inner.setContentType.bind(inner),
      get writableFinished() {
        return inner.writableFinished;
      },
      get destroyed() {
        return inner.destroyed;
      },
      get _onBeforeFirstWrite() {
        return inner._onBeforeFirstWrite;
      },
      set _onBeforeFirstWrite(hook) {
        inner._onBeforeFirstWrite = hook;
      },
    } as unknown as ResponseStream;
    const handler = traceHttpStreamHandler(async (_event, responseStream) => {
      httpResponseStream(responseStream, { statusCode: 202 }).write('queued');
      setTimeout(() => responseStream.end(), 5);
    });

    // Act
    await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), stream, lambdaContext());

    // Assert
    expect(inner.text()).toBe('queued');
    expect(inner.metadata()).toEqual({ statusCode: 202 });
    expect(capture.span('GET /report').attributes['http.response.status_code']).toBe(202);
  });

  it("marks the handler for streaming with the runtime's awslambda.streamifyResponse, and uses its HttpResponseStream", async () => {
    // Arrange: what Lambda's Node.js runtime puts on globalThis before it loads the function.
    const streamifyResponse = vi.fn(<F>(handler: F) => handler);
    const from = vi.fn((stream: ResponseStream) => stream);
    vi.stubGlobal('awslambda', { streamifyResponse, HttpResponseStream: { from } });
    const user = vi.fn(async (_event: unknown, stream: ResponseStream) => {
      httpResponseStream(stream, { statusCode: 200 }).end('ok');
    });

    // Act
    const handler = traceHttpStreamHandler(user, { highWaterMark: 4096 });
    const stream = responseStream();
    await handler(apiGatewayV1Event({ method: 'GET', path: '/report' }), stream, lambdaContext());

    // Assert
    expect(streamifyResponse).toHaveBeenCalledExactlyOnceWith(handler, { highWaterMark: 4096 });
    expect(from).toHaveBeenCalledExactlyOnceWith(stream, { statusCode: 200 });
    expect(user).toHaveBeenCalledOnce();
    expect(stream.text()).toBe('ok');
  });
});
