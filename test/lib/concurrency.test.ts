import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { APIGatewayProxyEventV2, SQSRecord } from 'aws-lambda';
import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { readTelemetryConfig, startTelemetry, traceHttpHandler, traceInvokeHandler, traceSqsRecords, withSpan } from '../../lib';
import { apiGatewayV2Event, lambdaContext, sqsEvent, sqsRecord } from '../../lib/testing';
import { TRACEPARENT } from '../trace-ids';

// One process may run several invocations at once (Lambda Managed Instances; any test running handlers side by
// side): each invocation's export must hold its own spans, never another's still running.

/** Records each export: the spans' names, and the request ids its entry spans carry (faas.invocation_id). */
function recordingExports() {
  const exports: { names: string[]; invocations: string[] }[] = [];
  startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'test' }), {
    exporter: {
      export(spans: ReadableSpan[], done) {
        const invocations = spans.flatMap((span) =>
          span.attributes['faas.invocation_id'] === undefined ? [] : [String(span.attributes['faas.invocation_id'])],
        );
        exports.push({ names: spans.map((span) => span.name).sort(), invocations: [...new Set(invocations)].sort() });
        done({ code: 0 });
      },
      shutdown: async () => undefined,
    },
  });
  return exports;
}

/** A promise and the function that resolves it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const context = (awsRequestId: string) => ({ ...lambdaContext({ functionName: 'test' }), awsRequestId });

describe('invocations running at once in one process', () => {
  it('export only their own spans: one that ends first does not take the spans of one still running', async () => {
    // Arrange
    const exports = recordingExports();
    const slowStep = gate();
    const handler = traceHttpHandler(async (event: APIGatewayProxyEventV2) => {
      const id = event.rawPath.slice(1);
      await withSpan(`early step ${id}`, async () => undefined);
      if (id === 'slow') await slowStep.opened;
      await withSpan(`late step ${id}`, async () => undefined);
      return { statusCode: 200 };
    });

    // Act: "slow" starts first and ends a step; "fast" runs from start to end while "slow" waits.
    const slow = handler(apiGatewayV2Event({ method: 'GET', path: '/slow', headers: { traceparent: TRACEPARENT } }), context('slow'));
    await new Promise((resolve) => setImmediate(resolve));
    await handler(apiGatewayV2Event({ method: 'GET', path: '/fast' }), context('fast'));
    const afterFast = exports.length;
    slowStep.open();
    await slow;

    // Assert
    expect(afterFast).toBe(1);
    expect(exports).toEqual([
      { names: ['GET /fast', 'early step fast', 'late step fast'], invocations: ['fast'] },
      { names: ['GET /slow', 'early step slow', 'late step slow'], invocations: ['slow'] },
    ]);
  });

  it('keep SQS batches and invokes apart too, and a span of no invocation goes with the next export', async () => {
    // Arrange
    const exports = recordingExports();
    const held = gate();
    const consumer = traceSqsRecords(async (record: SQSRecord) => {
      await withSpan(`handle ${record.messageId}`, async () => undefined);
      if (record.messageId === 'held') await held.opened;
    });
    const invoked = traceInvokeHandler(async () => withSpan('invoked step', async () => 'done'));

    // Act
    const batch = consumer(sqsEvent([sqsRecord({ messageId: 'held', traceparent: TRACEPARENT }), sqsRecord({ messageId: 'next' })]), context('batch'));
    await new Promise((resolve) => setImmediate(resolve));
    trace.getTracer('test').startSpan('outside any invocation').end();
    await invoked({}, context('invoke'));
    held.open();
    await batch;

    // Assert: the invoke's export holds its spans and the one of no invocation, none of the batch's.
    expect(exports[0].names).toEqual(['invoked step', 'outside any invocation', 'test']);
    expect(exports[0].invocations).toEqual(['invoke']);
    expect(exports[1].names).toEqual(['handle held', 'handle next', 'process orders', 'process orders']);
    expect(exports[1].invocations).toEqual(['batch']);
    expect(exports).toHaveLength(2);
  });

  it('does not hold the spans of invocations that never end forever: past 64 at once, the oldest go with the next export', async () => {
    // Arrange: 70 invocations each end a step, then never end themselves (their end is never reported)
    const exports = recordingExports();
    const never = gate();
    const stuck = traceInvokeHandler(async () => {
      await withSpan('step', async () => undefined);
      await never.opened;
    });
    for (let index = 0; index < 70; index++) void stuck({}, context(`stuck-${index}`));
    await new Promise((resolve) => setImmediate(resolve));

    // Act: one more invocation runs to its end
    await traceInvokeHandler(async () => 'done')({}, context('done'));

    // Assert: its export holds its own span and the ended steps of the 6 oldest invocations, no longer held apart
    expect(exports).toHaveLength(1);
    expect(exports[0].invocations).toEqual(['done']);
    expect(exports[0].names.filter((name) => name === 'step')).toHaveLength(6);
  });
});
