import middy from '@middy/core';
import { context, diag, SpanStatusCode, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { Context as LambdaContext } from 'aws-lambda';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  currentTracePayload,
  readTelemetryConfig,
  startTelemetry,
  traceHttpHandler,
  traceInvokeHandler,
  traceStepFunctionsTask,
  tracingMiddleware,
  withSpan,
  type HttpHandlerOptions,
  type TracePayload,
} from '../../lib';
import {
  albEvent,
  apiGatewayV1Event,
  apiGatewayV2Event,
  captureSpans,
  lambdaContext,
  sqsEvent,
  sqsRecord,
  traceShape,
  type SpanCapture,
} from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

const OTHER_TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const OTHER_SPAN_ID = 'b7ad6b7169203331';
const OTHER_TRACEPARENT = `00-${OTHER_TRACE_ID}-${OTHER_SPAN_ID}-01`;

/** Everything a span says about its invocation, for comparing the middleware's span with the wrapper's. */
const outcome = (span: ReadableSpan) => ({
  name: span.name,
  kind: span.kind,
  // A new root's trace id is random: what both sides must agree on is that it is one.
  traceId: span.parentSpanContext ? span.spanContext().traceId : 'new root',
  parentSpanId: span.parentSpanContext?.spanId,
  attributes: span.attributes,
  status: span.status,
  events: span.events.map((event) => event.name),
  links: span.links.map((link) => link.context.spanId),
});

let capture: SpanCapture;
beforeAll(async () => {
  // The process's cold start goes to a first invocation here, so that both sides of each comparison are warm.
  captureSpans();
  await traceInvokeHandler(async () => undefined)({}, lambdaContext());
});
beforeEach(() => {
  capture = captureSpans();
});

describe('tracingMiddleware gives the span the wrapper gives for the same trigger', () => {
  it.each([
    [
      'REST (v1), header in any case, 202',
      apiGatewayV1Event({ headers: { TraceParent: TRACEPARENT, 'User-Agent': 'curl/8', Host: 'api.example.com' } }),
      202,
      {},
    ],
    ['HTTP API (v2), 503 → ERROR', apiGatewayV2Event({ method: 'GET', path: '/orders/{orderId}', headers: { traceparent: TRACEPARENT } }), 503, {}],
    ['HTTP API (v2), inbound link', apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } }), 200, { inbound: 'link' as const }],
    [
      'ALB, the route given',
      albEvent({ method: 'GET', path: '/orders/o-1', headers: { TRACEPARENT, Host: 'orders.example.com' } }),
      404,
      { route: '/orders/{orderId}' },
    ],
  ])('HTTP: %s', async (_, event, statusCode, options: HttpHandlerOptions) => {
    const answer = { statusCode, body: '{}' };
    const invocation = lambdaContext({ functionName: 'create-order' });

    const viaWrapper = await traceHttpHandler(async () => answer, options)(event, invocation);
    const viaMiddy = await middy(async () => answer).use(tracingMiddleware({ trigger: 'http', ...options }))(event, invocation);

    expect(viaWrapper).toBe(answer);
    expect(viaMiddy).toBe(answer);
    const [wrapperSpan, middySpan] = capture.spans();
    expect(outcome(middySpan)).toEqual(outcome(wrapperSpan));
    expect(middySpan.attributes['http.response.status_code']).toBe(statusCode);
    expect(middySpan.status.code).toBe(statusCode >= 500 ? SpanStatusCode.ERROR : SpanStatusCode.UNSET);
    if (options.inbound) expect(middySpan.links.map((link) => link.context.spanId)).toEqual([SPAN_ID]);
    else expect(middySpan.parentSpanContext?.spanId).toBe(SPAN_ID);
  });

  it.each([
    ['a sync invoke, its client context', {}, { custom: { traceparent: TRACEPARENT } }],
    ['an async invoke, its payload envelope', { __otelTraceContext: { traceparent: TRACEPARENT }, payload: { orderId: 'o-1' } }, undefined],
  ])('invoke: %s', async (_, event, clientContext) => {
    const invocation = lambdaContext({ functionName: 'notify-customer', clientContext: clientContext as LambdaContext['clientContext'] });
    const received: unknown[] = [];
    const handle = async (payload: unknown) => (received.push(payload), 'sent');

    await traceInvokeHandler(handle)(event, invocation);
    await middy(handle).use(tracingMiddleware({ trigger: 'invoke' }))(event, invocation);

    // The handler sees the caller's own payload either way (an envelope is unwrapped).
    expect(received[1]).toEqual(received[0]);
    expect(received[1]).toEqual('payload' in event ? event.payload : event);
    const [wrapperSpan, middySpan] = capture.spans();
    expect(outcome(middySpan)).toEqual(outcome(wrapperSpan));
    expect(middySpan.name).toBe('notify-customer');
    expect(middySpan.parentSpanContext?.spanId).toBe(SPAN_ID);
  });

  it('step-functions: the reserved member of the task event, taken out of what the handler sees', async () => {
    const event = { traced_lambda_trace: { traceparent: TRACEPARENT }, orderId: 'o-1' };
    const invocation = lambdaContext({ functionName: 'charge-card' });
    const received: unknown[] = [];
    const handle = async (payload: unknown) => (received.push(payload), 'charged');

    await traceStepFunctionsTask(handle)(event, invocation);
    await middy(handle).use(tracingMiddleware({ trigger: 'step-functions' }))(event, invocation);

    expect(received).toEqual([{ orderId: 'o-1' }, { orderId: 'o-1' }]);
    const [wrapperSpan, middySpan] = capture.spans();
    expect(outcome(middySpan)).toEqual(outcome(wrapperSpan));
    expect(middySpan.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(middySpan.attributes['traced_lambda.parent.source']).toBe('step-functions-input');
  });

  it("rethrows the handler's error unchanged, recorded on the span as the wrapper records it", async () => {
    class OrderRejected extends Error {
      override name = 'OrderRejected';
    }
    const thrown = new OrderRejected('no stock');
    const fail = async () => {
      throw thrown;
    };
    const event = apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } });
    const invocation = lambdaContext();

    await expect(traceHttpHandler(fail)(event, invocation)).rejects.toBe(thrown);
    await expect(middy(fail).use(tracingMiddleware({ trigger: 'http' }))(event, invocation)).rejects.toBe(thrown);

    const [wrapperSpan, middySpan] = capture.spans();
    expect(outcome(middySpan)).toEqual(outcome(wrapperSpan));
    expect(middySpan.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no stock' });
    expect(middySpan.attributes['error.type']).toBe('OrderRejected');
  });

  it('passes a thrown value that is no Error through as it is', async () => {
    const handler = middy(async () => {
      throw 'plain text';
    }).use(tracingMiddleware({ trigger: 'invoke' }));

    await expect(handler({}, lambdaContext({ functionName: 'f' }))).rejects.toBe('plain text');
    expect(capture.span('f').status).toEqual({ code: SpanStatusCode.ERROR, message: 'plain text' });
  });

  it('records the answer an inner error handler gave instead of the error (the function returns that answer)', async () => {
    const handler = middy(async () => {
      throw new Error('database down');
    })
      .use(tracingMiddleware({ trigger: 'http' }))
      .use({
        onError: (request) => {
          request.response = { statusCode: 503, body: 'try later' };
        },
      });

    await expect(handler(apiGatewayV2Event(), lambdaContext())).resolves.toEqual({ statusCode: 503, body: 'try later' });
    const span = capture.span('POST /orders');
    expect(span.attributes['http.response.status_code']).toBe(503);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe('tracingMiddleware in a middy chain', () => {
  it('makes the entry span current for later middlewares and the handler, so child spans nest under it', async () => {
    const seen: (TracePayload | undefined)[] = [];
    const handler = middy(async () => {
      await withSpan('validate', async () => undefined);
      seen.push(currentTracePayload());
      return { statusCode: 200 };
    })
      .use(tracingMiddleware({ trigger: 'http' }))
      .use({ before: () => void seen.push(currentTracePayload()) });

    await handler(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } }), lambdaContext());

    expect(traceShape(capture.spans())).toEqual([{ name: 'POST /orders', kind: 'SERVER', children: [{ name: 'validate', kind: 'INTERNAL' }] }]);
    const entry = capture.span('POST /orders').spanContext();
    expect(seen.map((payload) => payload?.spanId)).toEqual([entry.spanId, entry.spanId]);
  });

  it("exports the invocation's spans in one export, and answers only once the export is done", async () => {
    const exports: { names: string[]; answer: () => void }[] = [];
    startTelemetry(readTelemetryConfig({}), {
      exporter: {
        export: (spans, done) => void exports.push({ names: spans.map((span) => span.name), answer: () => done({ code: ExportResultCode.SUCCESS }) }),
        shutdown: async () => undefined,
      },
    });
    let answered = false;
    const handler = middy(async () => {
      await withSpan('step', async () => undefined);
      return { statusCode: 200 };
    }).use(tracingMiddleware({ trigger: 'http' }));

    const result = handler(apiGatewayV2Event(), lambdaContext()).finally(() => (answered = true));
    await vi.waitFor(() => expect(exports).toHaveLength(1));
    await new Promise((resolve) => setTimeout(resolve, 10));

    expect(exports[0].names).toEqual(['POST /orders', 'step']);
    expect(answered).toBe(false);
    exports[0].answer();
    await expect(result).resolves.toEqual({ statusCode: 200 });
    expect(exports).toHaveLength(1);
  });

  it('keeps two invocations running at once apart: each span has its own parent, request id and answer', async () => {
    // Arrange: two requests from two traces, each handler held until the test releases it
    const releases = new Map<string, () => void>();
    const seen = new Map<string, TracePayload | undefined>();
    const handler = middy(async (event: { rawPath: string }) => {
      await new Promise<void>((resolve) => releases.set(event.rawPath, resolve));
      await withSpan(`work ${event.rawPath}`, async () => undefined);
      seen.set(event.rawPath, currentTracePayload());
      return { statusCode: event.rawPath === '/a' ? 201 : 202 };
    }).use(tracingMiddleware({ trigger: 'http' }));
    const [contextA, contextB] = [lambdaContext(), lambdaContext()];

    // Act: start A, then B; let B finish first, then A
    const resultA = handler(apiGatewayV2Event({ path: '/a', headers: { traceparent: TRACEPARENT } }), contextA);
    const resultB = handler(apiGatewayV2Event({ path: '/b', headers: { traceparent: OTHER_TRACEPARENT } }), contextB);
    await vi.waitFor(() => expect(releases.size).toBe(2));
    releases.get('/b')!();
    await expect(resultB).resolves.toEqual({ statusCode: 202 });
    releases.get('/a')!();
    await expect(resultA).resolves.toEqual({ statusCode: 201 });

    // Assert
    const spanA = capture.span('POST /a');
    const spanB = capture.span('POST /b');
    expect([spanA.spanContext().traceId, spanA.parentSpanContext?.spanId]).toEqual([TRACE_ID, SPAN_ID]);
    expect([spanB.spanContext().traceId, spanB.parentSpanContext?.spanId]).toEqual([OTHER_TRACE_ID, OTHER_SPAN_ID]);
    expect(spanA.attributes).toMatchObject({ 'faas.invocation_id': contextA.awsRequestId, 'http.response.status_code': 201 });
    expect(spanB.attributes).toMatchObject({ 'faas.invocation_id': contextB.awsRequestId, 'http.response.status_code': 202 });
    expect(capture.span('work /a').parentSpanContext?.spanId).toBe(spanA.spanContext().spanId);
    expect(capture.span('work /b').parentSpanContext?.spanId).toBe(spanB.spanContext().spanId);
    expect(seen.get('/a')?.spanId).toBe(spanA.spanContext().spanId);
    expect(seen.get('/b')?.spanId).toBe(spanB.spanContext().spanId);
  });

  it('refuses SQS batches: no span, the batch handler runs untouched, one warning for every such invocation', async () => {
    const warn = vi.spyOn(diag, 'warn').mockImplementation(() => undefined);
    const answer = { batchItemFailures: [] };
    const handler = middy(async () => answer).use(tracingMiddleware({ trigger: 'invoke' }));
    const event = sqsEvent([sqsRecord({ traceparent: TRACEPARENT })]);

    await expect(handler(event, lambdaContext())).resolves.toBe(answer);
    await expect(handler(event, lambdaContext())).resolves.toBe(answer);

    expect(capture.spans()).toEqual([]);
    const warnings = warn.mock.calls.filter(([message]) => message.includes('tracingMiddleware'));
    expect(warnings).toEqual([[expect.stringContaining('export traceSqsRecords(recordHandler) as the handler instead')]]);
    warn.mockRestore();
  });

  it('runs the handler untraced when tracing cannot start, its answer unchanged', async () => {
    const startSpan = vi.spyOn(capture.telemetry.tracer, 'startSpan').mockImplementation(() => {
      throw new Error('tracer broken');
    });
    const logged = vi.spyOn(diag, 'error').mockImplementation(() => undefined);
    const handler = middy(async () => ({ statusCode: 201 })).use(tracingMiddleware({ trigger: 'http' }));

    await expect(handler(apiGatewayV2Event(), lambdaContext())).resolves.toEqual({ statusCode: 201 });

    expect(startSpan).toHaveBeenCalled();
    expect(capture.spans()).toEqual([]);
    expect(logged).toHaveBeenCalledWith(expect.stringContaining('running the handler untraced'), expect.any(Error));
    startSpan.mockRestore();
    logged.mockRestore();
  });

  it('still ends the span, and leaves the answer alone, when its context cannot be made current', async () => {
    const attach = vi.spyOn(context, 'attach').mockImplementation(() => {
      throw new Error('context manager broken');
    });
    const logged = vi.spyOn(diag, 'error').mockImplementation(() => undefined);
    const handler = middy(async () => ({ statusCode: 201 })).use(tracingMiddleware({ trigger: 'http' }));

    await expect(handler(apiGatewayV2Event(), lambdaContext())).resolves.toEqual({ statusCode: 201 });

    expect(attach).toHaveBeenCalled();
    expect(capture.span('POST /orders').attributes['http.response.status_code']).toBe(201);
    expect(logged).toHaveBeenCalledWith(expect.stringContaining('tracingMiddleware could not start tracing'), expect.any(Error));
    attach.mockRestore();
    logged.mockRestore();
  });

  it('returns an answer it cannot read as it is, and still ends the span', async () => {
    const unreadable = {
      get statusCode(): number {
        throw new Error('not readable');
      },
    };
    const logged = vi.spyOn(diag, 'error').mockImplementation(() => undefined);
    const handler = middy(async () => unreadable).use(tracingMiddleware({ trigger: 'http' }));

    await expect(handler(apiGatewayV2Event(), lambdaContext())).resolves.toBe(unreadable);

    expect(capture.span('POST /orders').ended).toBe(true);
    expect(logged).toHaveBeenCalledWith(expect.stringContaining('could not read the outcome'), expect.any(Error));
    logged.mockRestore();
  });

  it('leaves the entry span current only while the invocation runs, inside the middy chain', async () => {
    let afterTracing: string | undefined;
    const handler = middy(async () => ({ statusCode: 200 }))
      .use({ after: () => void (afterTracing = trace.getActiveSpan()?.spanContext().spanId) })
      .use(tracingMiddleware({ trigger: 'http' }));

    await handler(apiGatewayV2Event(), lambdaContext());

    // A middleware given before the tracing one runs its `after` once the span has ended and is no longer current.
    expect(capture.spans()).toHaveLength(1);
    expect(afterTracing).toBeUndefined();
  });
});
