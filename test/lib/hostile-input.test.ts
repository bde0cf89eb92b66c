import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import { extractParentFromHttpEvent, extractParentFromSqsRecord, traceHttpHandler, traceInvokeHandler, traceSqsRecords } from '../../lib';
import { apiGatewayV2Event, captureSpans, lambdaContext, sqsRecord } from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

// Inputs that broke the kit under fuzzing: whatever arrives, the user's handler runs, its result or error comes
// back unchanged by identity, and no malformed parent is accepted.
const nullPrototype = () => Object.assign(Object.create(null) as object, { reason: 'no prototype' });

describe('a handler that throws something with no prototype', () => {
  it('gets that very value back from the invoke and HTTP wrappers, and the span is marked failed', async () => {
    const capture = captureSpans();
    const thrown = nullPrototype();
    await expect(traceInvokeHandler(async () => Promise.reject(thrown))({}, lambdaContext({ functionName: 'fn' }))).rejects.toBe(thrown);
    await expect(traceHttpHandler(async () => Promise.reject(thrown))(apiGatewayV2Event(), lambdaContext())).rejects.toBe(thrown);

    expect(capture.span('fn').status).toEqual({ code: 2, message: '[object Object]' });
  });

  it('has its record reported in batchItemFailures, the rest of the batch processed', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const capture = captureSpans();
    const seen: string[] = [];
    const handler = traceSqsRecords(async (record) => {
      seen.push(record.messageId);
      if (record.messageId === 'bad') throw nullPrototype();
    });

    const result = await handler({ Records: [sqsRecord({ messageId: 'bad' }), sqsRecord({ messageId: 'good' })] }, lambdaContext());

    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad' }] });
    expect(seen).toEqual(['bad', 'good']);
    expect(capture.spans().map((span) => span.status.code)).toEqual([2, 0]);
    vi.restoreAllMocks();
  });
});

describe('an SQS event that is not what its type says', () => {
  it('runs every record, a null record or an ARN that is not a string included, and never rejects', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    captureSpans();
    const handled: unknown[] = [];
    const handler = traceSqsRecords(async (record) => {
      handled.push(record);
    });
    const odd = { ...sqsRecord({ messageId: 'odd' }), eventSourceARN: 42 } as unknown as SQSRecord;
    const event = { Records: [null, odd, sqsRecord({ messageId: 'fine' })] } as unknown as SQSEvent;

    await expect(handler(event, lambdaContext())).resolves.toEqual({ batchItemFailures: [] });
    expect(handled).toEqual(event.Records);
    vi.restoreAllMocks();
  });
});

describe('AWSTraceHeader', () => {
  const recordWith = (header: string) => sqsRecord({ attributes: { AWSTraceHeader: header } });

  it('gives lower-case ids from an upper-case header, so that what is forwarded is a valid traceparent', () => {
    const { parent } = extractParentFromSqsRecord(recordWith('Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1'));
    expect(parent).toMatchObject({ traceId: '5759e988bd862e3fe1be46a994272793', spanId: '53995c3f42cd8ad8', traceFlags: 1 });
  });

  it('reads only fields with exactly the names Root, Parent and Sampled', () => {
    expect(extractParentFromSqsRecord(recordWith('RootX=1-5759e988-bd862e3fe1be46a994272793;Parental=53995c3f42cd8ad8;Sampled=1')).parent).toBeUndefined();
    expect(extractParentFromSqsRecord(recordWith('Root=1-5759e988-bd862e3fe1be46a994272793;Parental=53995c3f42cd8ad8;Sampled=1')).parent).toBeUndefined();
    expect(
      extractParentFromSqsRecord(recordWith('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:8f4a1b2c:0')).parent,
    ).toMatchObject({ traceId: '5759e988bd862e3fe1be46a994272793' });
  });
});

describe('traceparent with white space around it', () => {
  const parentOf = (traceparent: string) => extractParentFromHttpEvent(apiGatewayV2Event({ headers: { traceparent } })).parent;

  it("accepts HTTP's optional white space, space and tab", () => {
    expect(parentOf(` \t${TRACEPARENT}\t `)).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it.each([
    ['a leading line feed', `\n${TRACEPARENT}`],
    ['a trailing no-break space', `${TRACEPARENT}\u00a0`],
    ['a trailing line separator', `${TRACEPARENT}\u2028`],
    ['a leading byte order mark', `\ufeff${TRACEPARENT}`],
    ['a trailing carriage return', `${TRACEPARENT}\r`],
  ])('starts a new root for %s', (_case, traceparent) => {
    expect(parentOf(traceparent)).toBeUndefined();
  });
});
