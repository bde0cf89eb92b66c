import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { SQSRecord } from 'aws-lambda';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  currentTracePayload,
  readTelemetryConfig,
  startTelemetry,
  traceHttpHandler,
  traceInvokeHandler,
  traceEventBridgeHandler,
  traceSnsRecords,
  traceSqsRecords,
  withSpan,
} from '../../lib';
import {
  albEvent,
  apiGatewayV1Event,
  apiGatewayV2Event,
  captureSpans,
  eventBridgeEvent,
  lambdaContext,
  MemorySpanExporter,
  snsEnvelopeBody,
  snsRecord,
  sqsEvent,
  sqsRecord,
  traceShape,
  type SpanCapture,
  stringAttribute,
} from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

let capture: SpanCapture;
beforeEach(() => {
  capture = captureSpans();
});

describe('traceHttpHandler', () => {
  it('continues the caller trace with a SERVER span named after the route', async () => {
    // Arrange
    const handler = traceHttpHandler(async () => ({ statusCode: 202, body: '{}' }));
    const event = apiGatewayV1Event({ headers: { TraceParent: TRACEPARENT, 'User-Agent': 'curl/8', Host: 'api.example.com' } });

    // Act
    const result = await handler(event, lambdaContext({ functionName: 'create-order' }));

    // Assert
    expect(result).toEqual({ statusCode: 202, body: '{}' });
    const span = capture.span('POST /orders');
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span.attributes).toMatchObject({
      'faas.trigger': 'http',
      'http.request.method': 'POST',
      'http.route': '/orders',
      'url.path': '/orders',
      'http.response.status_code': 202,
      'user_agent.original': 'curl/8',
      'server.address': 'api.example.com',
      'client.address': '203.0.113.7',
      'cloud.account.id': '123456789012',
      'aws.lambda.invoked_arn': 'arn:aws:lambda:eu-west-1:123456789012:function:create-order',
    });
    expect(span.attributes['faas.invocation_id']).toEqual(expect.any(String));
  });

  it('names HTTP API spans from the route key and reads lower-cased headers', async () => {
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));

    await handler(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } }), lambdaContext());

    const span = capture.span('POST /orders');
    expect(span.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span.attributes['http.route']).toBe('/orders');
  });

  it('continues the trace of an ALB request, header names in any case, named by method', async () => {
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));
    const event = albEvent({ method: 'GET', path: '/orders/o-1', headers: { 'X-Forwarded-Proto': 'http', TRACEPARENT, Host: 'orders.example.com' } });

    await handler(event, lambdaContext());

    const span = capture.span('GET');
    expect(span.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span.attributes).toMatchObject({ 'url.path': '/orders/o-1', 'url.scheme': 'http', 'server.address': 'orders.example.com' });
    expect(span.attributes['http.route']).toBeUndefined();

    // The route the function serves, given to the wrapper: the span is named after it, as on API Gateway.
    await traceHttpHandler(async () => ({ statusCode: 200 }), { route: '/orders/{orderId}' })(event, lambdaContext());
    expect(capture.span('GET /orders/{orderId}').attributes['http.route']).toBe('/orders/{orderId}');
  });

  it('exports the spans of an SNS delivery once per invocation, not once per record', async () => {
    const exporter = new MemorySpanExporter();
    let exports = 0;
    startTelemetry(readTelemetryConfig({}), {
      exporter: { export: (spans, done) => (exports++, exporter.export(spans, done)), shutdown: async () => undefined },
    });
    const handled: string[] = [];
    await traceSnsRecords(async (record) => {
      handled.push(record.Sns.MessageId);
    })({ Records: [snsRecord({ message: 'a' }), snsRecord({ message: 'b' }), snsRecord({ message: 'c' })] }, lambdaContext());

    expect(handled).toHaveLength(3);
    expect(exports).toBe(1);
    expect(exporter.spans.map((span) => span.name)).toEqual(['process order-events', 'process order-events', 'process order-events']);
  });

  it('starts a new root when no traceparent arrives', async () => {
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));

    await handler(apiGatewayV2Event(), lambdaContext());

    const span = capture.span('POST /orders');
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.spanContext().traceId).not.toBe(TRACE_ID);
  });

  it('marks 5xx answers as errors and leaves 4xx unset on the server span', async () => {
    let status = 503;
    const handler = traceHttpHandler(async () => ({ statusCode: status }));

    await handler(apiGatewayV2Event(), lambdaContext());
    status = 404;
    await handler(apiGatewayV2Event(), lambdaContext());

    const [failed, notFound] = capture.spans();
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(notFound.status.code).toBe(SpanStatusCode.UNSET);
    expect(notFound.attributes['http.response.status_code']).toBe(404);
  });

  it("rethrows the handler's own error unchanged, recorded on the span, after flushing", async () => {
    class OrderRejected extends Error {
      override name = 'OrderRejected';
    }
    const thrown = new OrderRejected('no stock');
    const handler = traceHttpHandler(async () => {
      throw thrown;
    });

    await expect(handler(apiGatewayV2Event(), lambdaContext())).rejects.toBe(thrown);

    const span = capture.span('POST /orders');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no stock' });
    expect(span.attributes['error.type']).toBe('OrderRejected');
    expect(span.events.map((event) => event.name)).toEqual(['exception']);
  });

  it('makes the invocation span current inside the handler, so child spans nest under it', async () => {
    const handler = traceHttpHandler(async () => {
      await withSpan('validate', async () => undefined);
      return { statusCode: 200 };
    });

    await handler(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } }), lambdaContext());

    expect(traceShape(capture.spans())).toEqual([{ name: 'POST /orders', kind: 'SERVER', children: [{ name: 'validate', kind: 'INTERNAL' }] }]);
  });

  it('exports every span of the invocation, in one export, before the handler returns', async () => {
    const exporter = new MemorySpanExporter();
    const exportCalls = vi.spyOn(exporter, 'export');
    startTelemetry(readTelemetryConfig({}), { exporter });
    const handler = traceHttpHandler(async () => {
      await withSpan('step', async () => undefined);
      return { statusCode: 200 };
    });

    await handler(apiGatewayV2Event(), lambdaContext());

    // In the order they started (the order of an export is not part of OTLP's contract).
    expect(exporter.spans.map((span) => span.name)).toEqual(['POST /orders', 'step']);
    expect(exportCalls).toHaveBeenCalledTimes(1);
  });
});

describe('traceSqsRecords', () => {
  it('makes one CONSUMER span per record, each continuing its own trace', async () => {
    // Arrange
    const otherTrace = '0af7651916cd43dd8448eb211c80319c';
    const records = [
      sqsRecord({ traceparent: TRACEPARENT, messageId: 'm-1' }),
      sqsRecord({ traceparent: `00-${otherTrace}-b7ad6b7169203331-01`, messageId: 'm-2' }),
    ];
    const seen: string[] = [];
    const handler = traceSqsRecords(async (record) => {
      seen.push(record.messageId);
    });

    // Act
    const result = await handler(sqsEvent(records), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual(['m-1', 'm-2']);
    const spans = capture.spans();
    expect(spans.map((span) => [span.name, span.kind, span.spanContext().traceId])).toEqual([
      ['process orders', SpanKind.CONSUMER, TRACE_ID],
      ['process orders', SpanKind.CONSUMER, otherTrace],
    ]);
    expect(spans[0].parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(spans[1].attributes).toMatchObject({
      'messaging.system': 'aws_sqs',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'orders',
      'messaging.message.id': 'm-2',
      'faas.trigger': 'pubsub',
    });
  });

  it("says on each record's span which receive of its message it is, so that a retry is told from the first attempt", async () => {
    // Arrange: a first receive, a second (a retry), and a record without the system attribute
    const records = [
      sqsRecord({ messageId: 'first' }),
      sqsRecord({ messageId: 'retry', attributes: { ApproximateReceiveCount: '2' } }),
      sqsRecord({ messageId: 'unknown', attributes: { ApproximateReceiveCount: '' } }),
    ];
    const handler = traceSqsRecords(async () => undefined);

    // Act
    await handler(sqsEvent(records), lambdaContext());

    // Assert
    const receives = capture.spans().map((span) => [span.attributes['messaging.message.id'], span.attributes['traced_lambda.sqs.receive_count']]);
    expect(receives).toEqual([
      ['first', 1],
      ['retry', 2],
      ['unknown', undefined],
    ]);
  });

  it('reports a failing record in batchItemFailures with an ERROR span, and still processes the others', async () => {
    const records = ['ok-1', 'bad', 'ok-2'].map((messageId) => sqsRecord({ messageId }));
    const failure = new Error('cannot process');
    const handler = traceSqsRecords(async (record: SQSRecord) => {
      if (record.messageId === 'bad') throw failure;
    });
    const consoleError = vi.spyOn(console, 'error').mockImplementation(() => undefined);

    const result = await handler(sqsEvent(records), lambdaContext());

    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad' }] });
    const statuses = capture.spans().map((span) => [span.attributes['messaging.message.id'], span.status.code]);
    expect(statuses).toEqual([
      ['ok-1', SpanStatusCode.UNSET],
      ['bad', SpanStatusCode.ERROR],
      ['ok-2', SpanStatusCode.UNSET],
    ]);
    expect(consoleError).toHaveBeenCalledWith(expect.stringContaining('bad'), failure);
    consoleError.mockRestore();
  });

  it('stops a FIFO batch at the first failure and reports the rest, to keep the order', async () => {
    const records = ['a', 'b', 'c'].map((messageId) => sqsRecord({ messageId, queueName: 'orders.fifo' }));
    const processed: string[] = [];
    const handler = traceSqsRecords(async (record) => {
      processed.push(record.messageId);
      if (record.messageId === 'b') throw new Error('out of order');
    });
    vi.spyOn(console, 'error').mockImplementation(() => undefined);

    const result = await handler(sqsEvent(records), lambdaContext());

    expect(processed).toEqual(['a', 'b']);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'b' }, { itemIdentifier: 'c' }]);
    vi.restoreAllMocks();
  });

  it('processes up to `concurrency` records at once, each in its own trace, failures in record order', async () => {
    // Arrange: five records from five traces; two fail
    const traceIds = ['1', '2', '3', '4', '5'].map((digit) => digit.repeat(32));
    const records = traceIds.map((traceId, index) =>
      sqsRecord({
        messageId: `m-${index}`,
        messageAttributes: {
          traceparent: stringAttribute(`00-${traceId}-${'a'.repeat(16)}-01`),
        },
      }),
    );
    let inFlight = 0;
    let mostInFlight = 0;
    const seenTraces: string[] = [];
    const handler = traceSqsRecords(
      async (record) => {
        inFlight++;
        mostInFlight = Math.max(mostInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        seenTraces.push(`${record.messageId}:${currentTracePayload()?.traceId}`);
        inFlight--;
        if (record.messageId === 'm-1' || record.messageId === 'm-3') throw new Error('cannot process');
      },
      { concurrency: 3 },
    );
    vi.spyOn(console, 'error').mockImplementation(() => undefined);

    // Act
    const result = await handler(sqsEvent(records), lambdaContext());

    // Assert: never more than 3 at once, each record saw its own trace, failures reported in record order
    expect(mostInFlight).toBe(3);
    expect(seenTraces.sort()).toEqual(traceIds.map((traceId, index) => `m-${index}:${traceId}`));
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }, { itemIdentifier: 'm-3' }]);
    vi.restoreAllMocks();
  });

  it('keeps a FIFO batch in order whatever the concurrency', async () => {
    const records = ['a', 'b', 'c'].map((messageId) => sqsRecord({ messageId, queueName: 'orders.fifo' }));
    let inFlight = 0;
    let mostInFlight = 0;
    const handler = traceSqsRecords(
      async () => {
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 1));
        inFlight--;
      },
      { concurrency: 10 },
    );

    await handler(sqsEvent(records), lambdaContext());

    expect(mostInFlight).toBe(1);
  });

  const inGroup = (group: string, ...ids: string[]) =>
    ids.map((messageId) => sqsRecord({ messageId, queueName: 'jobs.fifo', attributes: { MessageGroupId: group } }));

  it('holds back the records after a failed one in its FIFO message group, and only those, each reported', async () => {
    // Arrange
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const records = [...inGroup('g1', 'g1-1', 'g1-2'), ...inGroup('g2', 'g2-1'), ...inGroup('g1', 'g1-3'), ...inGroup('g2', 'g2-2')];
    const processed: string[] = [];
    const handler = traceSqsRecords(async (record) => {
      processed.push(record.messageId);
      if (record.messageId === 'g1-2') throw new Error('cannot process');
    });

    // Act
    const result = await handler(sqsEvent(records), lambdaContext());

    // Assert: g1-3 held back and reported with g1-2; g2 ran to its end
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'g1-2' }, { itemIdentifier: 'g1-3' }]);
    expect(processed.sort()).toEqual(['g1-1', 'g1-2', 'g2-1', 'g2-2']);
    vi.restoreAllMocks();
  });

  it('runs FIFO message groups side by side under the concurrency option, one record of a group at a time', async () => {
    // Arrange
    const records = [...inGroup('g1', 'a', 'b'), ...inGroup('g2', 'c', 'd'), ...inGroup('g3', 'e')];
    const running = new Map<string, number>();
    let mostInFlight = 0;
    let inFlight = 0;
    let mostInOneGroup = 0;
    const handler = traceSqsRecords(
      async (record) => {
        const group = record.attributes.MessageGroupId ?? '';
        running.set(group, (running.get(group) ?? 0) + 1);
        mostInOneGroup = Math.max(mostInOneGroup, running.get(group)!);
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight--;
        running.set(group, running.get(group)! - 1);
      },
      { concurrency: 2 },
    );

    // Act
    await handler(sqsEvent(records), lambdaContext());

    // Assert
    expect(mostInFlight).toBe(2);
    expect(mostInOneGroup).toBe(1);
  });

  it('answers an empty or malformed event with no failures', async () => {
    const handler = traceSqsRecords(async () => undefined);

    expect(await handler(sqsEvent([]), lambdaContext())).toEqual({ batchItemFailures: [] });
    expect(await handler({} as never, lambdaContext())).toEqual({ batchItemFailures: [] });
  });
});

describe('traceInvokeHandler', () => {
  it('continues the trace from the client context with a SERVER span named after the function', async () => {
    const handler = traceInvokeHandler(async (event: { n: number }) => ({ doubled: event.n * 2 }));
    const context = lambdaContext({ functionName: 'notify-customer', clientContext: { custom: { traceparent: TRACEPARENT } } as never });

    const result = await handler({ n: 21 }, context);

    expect(result).toEqual({ doubled: 42 });
    const span = capture.span('notify-customer');
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span.attributes['faas.trigger']).toBe('other');
  });

  it('rethrows the error unchanged', async () => {
    const thrown = new TypeError('bad payload');
    const handler = traceInvokeHandler(async () => {
      throw thrown;
    });

    await expect(handler({}, lambdaContext({ functionName: 'f' }))).rejects.toBe(thrown);
    expect(capture.span('f').status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe('where an entry span says its parent came from (traced_lambda.parent.source)', () => {
  const sourceOf = (name: string) => capture.span(name).attributes['traced_lambda.parent.source'];

  it('says http-headers for a request that carried a traceparent, none for one that did not', async () => {
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));

    await handler(apiGatewayV2Event({ path: '/traced', headers: { traceparent: TRACEPARENT } }), lambdaContext());
    await handler(apiGatewayV2Event({ path: '/untraced' }), lambdaContext());

    expect(sourceOf('POST /traced')).toBe('http-headers');
    expect(sourceOf('POST /untraced')).toBe('none');
  });

  it("says for each SQS record where its producer's context was: attributes, SNS envelope, AWSTraceHeader, or none", async () => {
    // Arrange
    const records = [
      sqsRecord({ messageId: 'attributes', traceparent: TRACEPARENT }),
      sqsRecord({ messageId: 'envelope', body: snsEnvelopeBody('{}', { traceparent: TRACEPARENT }) }),
      sqsRecord({ messageId: 'header', attributes: { AWSTraceHeader: `Root=1-${TRACE_ID.slice(0, 8)}-${TRACE_ID.slice(8)};Parent=${SPAN_ID};Sampled=1` } }),
      sqsRecord({ messageId: 'nothing' }),
    ];

    // Act
    await traceSqsRecords(async () => undefined)(sqsEvent(records), lambdaContext());

    // Assert
    expect(capture.spans().map((span) => [span.attributes['messaging.message.id'], span.attributes['traced_lambda.parent.source']])).toEqual([
      ['attributes', 'sqs-message-attributes'],
      ['envelope', 'sqs-sns-envelope'],
      ['header', 'sqs-aws-trace-header'],
      ['nothing', 'none'],
    ]);
  });

  it('says sns-message-attributes for an SNS record that carried a traceparent, whatever the inbound policy did with it', async () => {
    await traceSnsRecords(async () => undefined, { inbound: 'link' })({ Records: [snsRecord({ attributes: { traceparent: TRACEPARENT } })] }, lambdaContext());

    const span = capture.span('process order-events');
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes['traced_lambda.parent.source']).toBe('sns-message-attributes');
  });

  it('says lambda-client-context for a synchronous invoke, invoke-payload-envelope for an asynchronous one', async () => {
    const handler = traceInvokeHandler(async () => 'done');

    await handler({}, lambdaContext({ functionName: 'sync', clientContext: { custom: { traceparent: TRACEPARENT } } as never }));
    await handler({ __otelTraceContext: { traceparent: TRACEPARENT }, payload: {} }, lambdaContext({ functionName: 'async' }));

    expect(sourceOf('sync')).toBe('lambda-client-context');
    expect(sourceOf('async')).toBe('invoke-payload-envelope');
  });

  it('says eventbridge-detail for an event whose detail carried a traceparent', async () => {
    await traceEventBridgeHandler(async () => undefined)(eventBridgeEvent({ traceparent: TRACEPARENT }), lambdaContext());

    expect(sourceOf('process OrderPlaced')).toBe('eventbridge-detail');
  });
});
