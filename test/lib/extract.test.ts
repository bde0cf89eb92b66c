import { beforeEach, describe, expect, it } from 'vitest';
import { mergeIntoClientContext, CLIENT_CONTEXT_MAX_BYTES } from '../../lib/carriers/lambda-client-context';
import { apiGatewayV1Event, apiGatewayV2Event, captureSpans, lambdaContext, sqsRecord, stringAttribute } from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';
import { extractParentFromHttpEvent } from '../../lib/carriers/http-headers';
import { extractParentFromInvoke } from '../../lib/carriers/lambda-invoke';
import { extractParentFromSqsRecord } from '../../lib/carriers/sqs';

beforeEach(() => {
  captureSpans(); // registers the W3C propagator the extraction uses
});

describe('extractParentFromHttpEvent', () => {
  it.each([
    ['REST, client case', apiGatewayV1Event({ headers: { TraceParent: TRACEPARENT } })],
    ['REST, upper case', apiGatewayV1Event({ headers: { TRACEPARENT: TRACEPARENT } })],
    ['HTTP API, lower-cased', apiGatewayV2Event({ headers: { TraceParent: TRACEPARENT } })],
  ])('finds traceparent in any header case (%s)', (_, event) => {
    const found = extractParentFromHttpEvent(event);

    expect(found.source).toBe('http-headers');
    expect(found.parent).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, isRemote: true });
  });

  it('keeps tracestate with the parent', () => {
    const found = extractParentFromHttpEvent(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT, tracestate: 'vendor=value,other=1' } }));

    expect(found.parent?.traceState?.serialize()).toBe('vendor=value,other=1');
  });

  it('reads multiValueHeaders when REST gives no single-value headers', () => {
    const event = apiGatewayV1Event({ multiValueHeaders: { traceparent: [TRACEPARENT] } });
    event.headers = {};

    expect(extractParentFromHttpEvent(event).parent?.traceId).toBe(TRACE_ID);
  });

  it('starts a new root when two different traceparent headers arrive', () => {
    const other = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
    const event = apiGatewayV1Event({ multiValueHeaders: { traceparent: [TRACEPARENT, other] } });

    const found = extractParentFromHttpEvent(event);

    expect(found.source).toBe('none');
    expect(found.parent).toBeUndefined();
  });

  it.each([
    ['garbage', 'not-a-traceparent'],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
    ['version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ['short span id', `00-${TRACE_ID}-00f067aa-01`],
  ])('starts a new root for a malformed traceparent (%s)', (_, value) => {
    expect(extractParentFromHttpEvent(apiGatewayV2Event({ headers: { traceparent: value } })).source).toBe('none');
  });

  it('starts a new root when the event has no headers at all', () => {
    const event = apiGatewayV1Event();
    (event as { headers: unknown }).headers = null;
    (event as { multiValueHeaders: unknown }).multiValueHeaders = null;

    expect(extractParentFromHttpEvent(event).source).toBe('none');
  });
});

describe('extractParentFromSqsRecord', () => {
  it('finds the context in the message attributes', () => {
    const record = sqsRecord({
      messageAttributes: {
        traceparent: stringAttribute(TRACEPARENT),
      },
    });

    const found = extractParentFromSqsRecord(record);

    expect(found.source).toBe('sqs-message-attributes');
    expect(found.parent).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID });
  });

  it('falls back to the AWSTraceHeader system attribute', () => {
    const record = sqsRecord({
      attributes: { AWSTraceHeader: `Root=1-${TRACE_ID.slice(0, 8)}-${TRACE_ID.slice(8)};Parent=${SPAN_ID};Sampled=1` },
    });

    const found = extractParentFromSqsRecord(record);

    expect(found.source).toBe('sqs-aws-trace-header');
    expect(found.parent).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
  });

  it('prefers the W3C attributes over AWSTraceHeader', () => {
    const record = sqsRecord({
      messageAttributes: {
        traceparent: stringAttribute(TRACEPARENT),
      },
      attributes: { AWSTraceHeader: `Root=1-${'1'.repeat(8)}-${'2'.repeat(24)};Parent=${'3'.repeat(16)};Sampled=1` },
    });

    expect(extractParentFromSqsRecord(record).parent?.traceId).toBe(TRACE_ID);
  });

  it('ignores a traceparent attribute that is not a string', () => {
    const record = sqsRecord({
      messageAttributes: {
        traceparent: { dataType: 'Binary', binaryValue: 'AAAA', stringListValues: [], binaryListValues: [] },
      },
    });

    expect(extractParentFromSqsRecord(record).source).toBe('none');
  });
});

describe('extractParentFromInvoke', () => {
  it('finds the context in clientContext.custom', () => {
    const context = lambdaContext({ clientContext: { custom: { traceparent: TRACEPARENT } } as never });

    const found = extractParentFromInvoke(context);

    expect(found.source).toBe('lambda-client-context');
    expect(found.parent?.spanId).toBe(SPAN_ID);
  });

  it('starts a new root without a client context, or with a custom that is not an object', () => {
    expect(extractParentFromInvoke(lambdaContext()).source).toBe('none');
    expect(extractParentFromInvoke(lambdaContext({ clientContext: { custom: 'x' } as never })).source).toBe('none');
  });
});

describe('mergeIntoClientContext', () => {
  const decode = (value: string | undefined) => JSON.parse(Buffer.from(value ?? '', 'base64').toString('utf8'));
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64');

  it('creates a client context with a custom object when there is none', () => {
    expect(decode(mergeIntoClientContext(undefined, { traceparent: TRACEPARENT }))).toEqual({
      custom: { traceparent: TRACEPARENT },
    });
  });

  it("keeps the caller's keys, in custom and beside it", () => {
    const existing = encode({ custom: { tenant: 'blue' }, env: { locale: 'fr' } });

    expect(decode(mergeIntoClientContext(existing, { traceparent: TRACEPARENT }))).toEqual({
      custom: { tenant: 'blue', traceparent: TRACEPARENT },
      env: { locale: 'fr' },
    });
  });

  it("leaves the caller's value untouched when it cannot be read or its custom is not an object", () => {
    expect(mergeIntoClientContext('%%%not base64 json', { traceparent: TRACEPARENT })).toBe('%%%not base64 json');
    const stringCustom = encode({ custom: 'mine' });
    expect(mergeIntoClientContext(stringCustom, { traceparent: TRACEPARENT })).toBe(stringCustom);
  });

  it("drops our part, never the caller's, when the result would pass Lambda's limit", () => {
    const big = encode({ custom: { blob: 'x'.repeat(2600) } });
    expect(big.length).toBeLessThanOrEqual(CLIENT_CONTEXT_MAX_BYTES);

    expect(mergeIntoClientContext(big, { traceparent: TRACEPARENT, tracestate: 'v=' + 'y'.repeat(200) })).toBe(big);
  });
});
