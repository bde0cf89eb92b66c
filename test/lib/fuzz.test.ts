import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, SQSEvent, SQSRecord } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  extractParentFromHttpEvent,
  extractParentFromInvoke,
  extractParentFromSqsRecord,
  traceHttpHandler,
  traceInvokeHandler,
  traceSqsRecords,
} from '../../lib';
import { apiGatewayV1Event, apiGatewayV2Event, captureSpans, lambdaContext, sqsRecord, stringAttribute } from '../../lib/testing';

// Property-based tests over every entry point and carrier, seeded so that a failure replays: whatever arrives,
// the user's handler runs once, its result or error comes back unchanged by identity, the kit never throws, and
// no malformed parent is accepted. 10,000+ generated cases in all, in a few seconds.
const SEED = 20261124;
const RUNS = 2_500;

beforeAll(() => {
  captureSpans({ OTEL_LOG_LEVEL: 'none' });
  // Failed records are logged by design; the generated ones would fill the test output.
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
});
afterAll(() => {
  vi.restoreAllMocks();
});

const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });
const validTraceparent = fc.tuple(hex(32), hex(16), hex(2)).map(([trace, span, flags]) => `00-${trace}-${span}-${flags}`);
/** Valid ones, valid ones with a character changed, inserted or wrapped in odd white space, and anything at all. */
const traceparentLike = fc.oneof(
  validTraceparent,
  fc.tuple(validTraceparent, fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 2 })).map(([value, at, text]) => {
    const i = at % (value.length + 1);
    return value.slice(0, i) + text + value.slice(i + 1);
  }),
  fc
    .tuple(fc.constantFrom(' ', '\t', '\n', '\r', '\u00a0', '\u2028', '\ufeff', ''), validTraceparent, fc.constantFrom(' ', '\t', '\n', '\u00a0', ''))
    .map(([before, value, after]) => before + value + after),
  validTraceparent.map((value) => value.toUpperCase()),
  fc.string({ unit: 'binary' }),
);
const anyValue = fc.anything({ withNullPrototype: true, withBigInt: true, withMap: true, withSet: true, withTypedArray: true });

/** What a W3C-conformant next hop accepts as a parent (ids as the kit forwards them). */
function expectWellFormed(parent: { traceId: string; spanId: string } | undefined) {
  if (!parent) return;
  expect(parent.traceId).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
  expect(parent.spanId).toMatch(/^(?!0{16})[0-9a-f]{16}$/);
}

/** A handler that records its calls and then returns or throws the generated value. */
function userHandler(outcome: { throws: boolean; value: unknown }) {
  const calls: unknown[] = [];
  const handler = async (event: unknown) => {
    calls.push(event);
    if (outcome.throws) throw outcome.value;
    return outcome.value;
  };
  return { handler, calls };
}
const outcome = fc.record({ throws: fc.boolean(), value: anyValue });

async function settle(promise: Promise<unknown>): Promise<{ threw: boolean; value: unknown }> {
  try {
    return { threw: false, value: await promise };
  } catch (error) {
    return { threw: true, value: error };
  }
}

describe('generated input', () => {
  it('HTTP events (REST and HTTP API, any header shape): one call, the result or error unchanged, a well-formed parent or none', async () => {
    const headers = fc.dictionary(fc.constantFrom('traceparent', 'TraceParent', 'TRACEPARENT', 'tracestate', 'x'), fc.oneof(traceparentLike, anyValue));
    const event = fc.oneof(
      fc
        .tuple(headers, fc.option(fc.dictionary(fc.constantFrom('traceparent', 'Traceparent'), fc.oneof(fc.array(traceparentLike), anyValue))))
        .map(([h, multi]) => ({ ...apiGatewayV1Event(), headers: h, multiValueHeaders: multi }) as unknown as APIGatewayProxyEvent),
      headers.map((h) => ({ ...apiGatewayV2Event(), headers: h }) as unknown as APIGatewayProxyEventV2),
      anyValue,
    );
    await fc.assert(
      fc.asyncProperty(event, outcome, async (generated, result) => {
        const { handler, calls } = userHandler(result);
        const answered = await settle(traceHttpHandler(handler as never)(generated as never, lambdaContext()));
        expect(calls).toHaveLength(1);
        expect(calls[0]).toBe(generated);
        expect(answered.threw).toBe(result.throws);
        expect(answered.value).toBe(result.value);
        expectWellFormed(extractParentFromHttpEvent(generated as never).parent);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('direct invokes (any client context, any payload): one call with the payload, the result or error unchanged', async () => {
    const clientContext = fc.oneof(fc.record({ custom: fc.oneof(fc.record({ traceparent: traceparentLike, tracestate: fc.string() }), anyValue) }), anyValue);
    await fc.assert(
      fc.asyncProperty(anyValue, clientContext, outcome, async (payload, custom, result) => {
        const { handler, calls } = userHandler(result);
        const context = { ...lambdaContext({ functionName: 'fuzz' }), clientContext: custom as never };
        const answered = await settle(traceInvokeHandler(handler)(payload, context));
        expect(calls).toHaveLength(1);
        expect(calls[0]).toBe(payload);
        expect(answered.threw).toBe(result.throws);
        expect(answered.value).toBe(result.value);
        expectWellFormed(extractParentFromInvoke(context).parent);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('SQS batches (records of any shape): every record once, never a rejection, exactly the failed records reported', async () => {
    const record = fc.oneof(
      fc
        .record({
          id: fc.uuid(),
          traceparent: fc.option(traceparentLike),
          awsTraceHeader: fc.option(
            fc.oneof(
              fc.string(),
              fc.tuple(hex(8), hex(24), hex(16)).map(([a, b, c]) => `Root=1-${a}-${b};Parent=${c};Sampled=1`.toUpperCase()),
            ),
          ),
          arn: fc.oneof(fc.constant('arn:aws:sqs:eu-west-1:123456789012:orders'), fc.constant('arn:aws:sqs:eu-west-1:123456789012:orders.fifo'), anyValue),
        })
        .map(
          ({ id, traceparent, awsTraceHeader, arn }) =>
            ({
              ...sqsRecord({ messageId: id, messageAttributes: traceparent === null ? {} : { traceparent: stringAttribute(traceparent) } }),
              ...(awsTraceHeader === null ? {} : { attributes: { AWSTraceHeader: awsTraceHeader } }),
              eventSourceARN: arn,
            }) as unknown as SQSRecord,
        ),
      anyValue,
    );
    const records = fc.array(fc.record({ record, result: outcome }), { maxLength: 5 });
    await fc.assert(
      fc.asyncProperty(records, async (batch) => {
        const calls: unknown[] = [];
        const handler = traceSqsRecords(async (received) => {
          calls.push(received);
          // Records run one at a time, in order (the default concurrency): the call's index is the record's.
          const { result } = batch[calls.length - 1];
          if (result.throws) throw result.value;
        });
        const event = { Records: batch.map((item) => item.record) } as SQSEvent;
        const answered = await settle(handler(event, lambdaContext()));
        expect(answered.threw).toBe(false);
        const reported = (answered.value as { batchItemFailures: unknown[] }).batchItemFailures.length;
        const fifo = batch.some((item) => {
          const arn: unknown = (item.record as SQSRecord | null)?.eventSourceARN;
          return typeof arn === 'string' && arn.endsWith('.fifo');
        });
        const firstFailure = batch.findIndex((item) => item.result.throws);
        if (fifo && firstFailure >= 0) {
          // FIFO: in order up to the first failure, which is reported with every record after it.
          expect(calls).toEqual(event.Records.slice(0, firstFailure + 1));
          expect(reported).toBe(batch.length - firstFailure);
        } else {
          expect(calls).toEqual(event.Records);
          expect(reported).toBe(batch.filter((item) => item.result.throws).length);
        }
        for (const item of batch) expectWellFormed(extractParentFromSqsRecord(item.record as SQSRecord).parent);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('traceparent strings alone: a parent only from a well-formed value', () => {
    fc.assert(
      fc.property(traceparentLike, (traceparent) => {
        const { parent } = extractParentFromHttpEvent(apiGatewayV2Event({ headers: { traceparent } }));
        expectWellFormed(parent);
        if (parent) expect(traceparent.replace(/^[ \t]+|[ \t]+$/g, '')).toMatch(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
