import { context, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { EventBridgeEvent } from 'aws-lambda';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  continueFromPayload,
  currentTraceHeaders,
  currentTracePayload,
  startRun,
  traceEventBridgeHandler,
  traceHttpHandler,
  traceLogFields,
  traceSnsRecords,
  traceSqsRecords,
  withSpan,
} from '../../lib';
import {
  apiGatewayV2Event,
  captureSpans,
  eventBridgeEvent,
  lambdaContext,
  snsRecord,
  sqsEvent,
  sqsRecord,
  traceShape,
  type SpanCapture,
} from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

let capture: SpanCapture;

beforeEach(() => {
  capture = captureSpans();
});

describe('inbound trust policy', () => {
  const ok = async () => ({ statusCode: 200 });
  const request = () => apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } });

  it('continues the caller trace by default', async () => {
    await traceHttpHandler(ok)(request(), lambdaContext());

    expect(capture.span('POST /orders').spanContext().traceId).toBe(TRACE_ID);
  });

  it('starts a new trace linked to the caller with "link"', async () => {
    await traceHttpHandler(ok, { inbound: 'link' })(request(), lambdaContext());

    const span = capture.span('POST /orders');
    expect(span.spanContext().traceId).not.toBe(TRACE_ID);
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.links.map((link) => link.context.spanId)).toEqual([SPAN_ID]);
  });

  it('starts a new trace with no relation with "ignore"', async () => {
    await traceHttpHandler(ok, { inbound: 'ignore' })(request(), lambdaContext());

    const span = capture.span('POST /orders');
    expect(span.spanContext().traceId).not.toBe(TRACE_ID);
    expect(span.links).toEqual([]);
  });
});

describe('SQS batch strategies', () => {
  const otherTrace = '0af7651916cd43dd8448eb211c80319c';
  const batch = () =>
    sqsEvent([sqsRecord({ traceparent: TRACEPARENT, messageId: 'm-1' }), sqsRecord({ traceparent: `00-${otherTrace}-b7ad6b7169203331-01`, messageId: 'm-2' })]);

  it('"links": each record span starts a new trace linked to its producer', async () => {
    await traceSqsRecords(async () => undefined, { strategy: 'links' })(batch(), lambdaContext());

    const spans = capture.spans();
    expect(spans.map((span) => span.parentSpanContext)).toEqual([undefined, undefined]);
    expect(spans.map((span) => span.links[0]?.context.traceId)).toEqual([TRACE_ID, otherTrace]);
    expect(new Set(spans.map((span) => span.spanContext().traceId)).has(TRACE_ID)).toBe(false);
  });

  it('"both": one batch span linked to every producer, a child per record linked to its own', async () => {
    await traceSqsRecords(async () => undefined, { strategy: 'both' })(batch(), lambdaContext());

    expect(traceShape(capture.spans())).toEqual([
      {
        name: 'process orders',
        kind: 'CONSUMER',
        children: [
          { name: 'process orders', kind: 'CONSUMER' },
          { name: 'process orders', kind: 'CONSUMER' },
        ],
      },
    ]);
    const batchSpan = capture.spans().find((span) => span.attributes['messaging.batch.message_count'] === 2)!;
    expect(batchSpan.links.map((link) => link.context.traceId)).toEqual([TRACE_ID, otherTrace]);
    const records = capture.spans().filter((span) => span !== batchSpan);
    expect(records.map((span) => span.links[0]?.context.traceId)).toEqual([TRACE_ID, otherTrace]);
    expect(records.map((span) => span.attributes['messaging.message.id'])).toEqual(['m-1', 'm-2']);
  });
});

describe('trace payloads (custom transports, logs)', () => {
  it('round-trips the current context through a plain payload to a remote parent', async () => {
    let payload: ReturnType<typeof currentTracePayload>;
    await withSpan('producer', async () => {
      payload = currentTracePayload();
    });

    await context.with(continueFromPayload(payload), () => withSpan('continued', async () => undefined));

    const producer = capture.span('producer').spanContext();
    const continued = capture.span('continued');
    expect(payload).toEqual({ traceId: producer.traceId, spanId: producer.spanId, traceFlags: 1 });
    expect(continued.spanContext().traceId).toBe(producer.traceId);
    expect(continued.parentSpanContext).toMatchObject({ spanId: producer.spanId, isRemote: true });
  });

  it.each([
    ['nothing', undefined],
    ['a short trace id', { traceId: 'abc', spanId: SPAN_ID, traceFlags: 1 }],
    ['an all-zero trace id', { traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: 1 }],
    ['a span id that is not hex', { traceId: TRACE_ID, spanId: 'zzzzzzzzzzzzzzzz', traceFlags: 1 }],
  ])('starts a new trace from %s', async (_, payload) => {
    await context.with(continueFromPayload(payload), () => withSpan('step', async () => undefined));

    expect(capture.span('step').parentSpanContext).toBeUndefined();
  });

  it('gives W3C fields for payloads and log fields for structured logs', async () => {
    await withSpan('step', async () => {
      const span = currentTracePayload()!;
      expect(currentTraceHeaders()).toEqual({ traceparent: `00-${span.traceId}-${span.spanId}-01` });
      expect(traceLogFields()).toEqual({ trace_id: span.traceId, span_id: span.spanId, trace_flags: '01' });
    });
    expect(traceLogFields()).toEqual({});
    expect(currentTraceHeaders()).toEqual({});
  });
});

describe('startRun', () => {
  it('keeps one root span for a whole script, with every step and forward under it', async () => {
    const run = startRun('nightly import', { attributes: { 'job.name': 'import' } });

    await run.inside(async () => {
      await withSpan('load', async () => undefined);
      await withSpan('store', async () => undefined);
    });
    const headers = run.headers();
    await run.end();

    expect(traceShape(capture.spans())).toEqual([
      {
        name: 'nightly import',
        kind: 'INTERNAL',
        children: [
          { name: 'load', kind: 'INTERNAL' },
          { name: 'store', kind: 'INTERNAL' },
        ],
      },
    ]);
    // A new trace whose id this process generated: the W3C level 2 random flag (0x02) goes with the sampled one.
    expect(headers.traceparent).toBe(`00-${run.span.spanContext().traceId}-${run.span.spanContext().spanId}-03`);
  });

  it('records the failure that ended the run', async () => {
    const run = startRun('import');

    await run.end(new Error('source unavailable'));

    expect(capture.span('import').status).toEqual({ code: SpanStatusCode.ERROR, message: 'source unavailable' });
  });
});

describe('SNS and EventBridge handlers', () => {
  it('continues the publisher trace with a CONSUMER span per SNS record', async () => {
    const handler = traceSnsRecords(async () => undefined);

    await handler({ Records: [snsRecord({ attributes: { traceparent: TRACEPARENT } })] }, lambdaContext());

    const span = capture.span('process order-events');
    expect(span.kind).toBe(SpanKind.CONSUMER);
    expect(span.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span.attributes).toMatchObject({ 'messaging.system': 'aws.sns', 'messaging.destination.name': 'order-events' });
  });

  it('rethrows an SNS record error unchanged', async () => {
    const thrown = new Error('cannot handle');
    const handler = traceSnsRecords(async () => {
      throw thrown;
    });

    await expect(handler({ Records: [snsRecord()] }, lambdaContext())).rejects.toBe(thrown);
    expect(capture.span('process order-events').status.code).toBe(SpanStatusCode.ERROR);
  });

  it('ends an SNS delivery at its first failing record: the error unchanged, the records after it not run', async () => {
    // Arrange
    const thrown = new Error('cannot handle b');
    const handled: string[] = [];
    const handler = traceSnsRecords(async (record) => {
      handled.push(record.Sns.Message);
      if (record.Sns.Message === 'b') throw thrown;
    });

    // Act
    const answer = handler({ Records: ['a', 'b', 'c'].map((message) => snsRecord({ message })) }, lambdaContext());

    // Assert
    await expect(answer).rejects.toBe(thrown);
    expect(handled).toEqual(['a', 'b']);
    expect(capture.spans().map((span) => span.status.code)).toEqual([SpanStatusCode.UNSET, SpanStatusCode.ERROR]);
  });

  it('continues the producer trace from an EventBridge detail', async () => {
    const handler = traceEventBridgeHandler(async (event: EventBridgeEvent<string, { orderId: string }>) => event.detail.orderId);

    const result = await handler(eventBridgeEvent({ orderId: 'o-1', traceparent: TRACEPARENT }), lambdaContext());

    expect(result).toBe('o-1');
    expect(capture.span('process OrderPlaced').parentSpanContext?.spanId).toBe(SPAN_ID);
  });
});
