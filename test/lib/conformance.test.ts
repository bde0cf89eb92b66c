import { beforeEach, describe, expect, it } from 'vitest';
import { isValidTraceState } from '../../lib/carriers/trace-state';
import {
  currentTraceHeaders,
  extractParentFromEventBridgeEvent,
  extractParentFromHttpEvent,
  extractParentFromSnsRecord,
  extractParentFromSqsRecord,
  traceHttpHandler,
} from '../../lib';
import {
  albEvent,
  apiGatewayV1Event,
  apiGatewayV2Event,
  captureSpans,
  eventBridgeEvent,
  lambdaContext,
  snsEnvelopeBody,
  snsRecord,
  sqsRecord,
  stringAttribute,
} from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

beforeEach(() => {
  captureSpans();
});

/** What a handler finds in one request's headers; REST and ALB events of the same request must find the same. */
const fromHeaders = (headers: Record<string, string>) => {
  const httpApi = extractParentFromHttpEvent(apiGatewayV2Event({ headers }));
  // Both carry every header in multiValueHeaders, as API Gateway and ALB (multi-value headers on) deliver them.
  for (const [shape, event] of [
    ['REST', apiGatewayV1Event({ headers })],
    ['ALB', albEvent({ headers })],
  ] as const) {
    expect(described(extractParentFromHttpEvent(event)), shape).toEqual(described(httpApi));
  }
  return httpApi;
};
const described = ({ source, parent }: ReturnType<typeof extractParentFromHttpEvent>) =>
  parent ? { source, traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.traceFlags, traceState: parent.traceState?.serialize() } : { source };

describe('W3C traceparent', () => {
  it.each([
    ['version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ['version 00 with extra fields', `${TRACEPARENT}-extra`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`],
    ['all-zero span id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['flags that are not hex', `00-${TRACE_ID}-${SPAN_ID}-zz`],
    ['a trace id one digit short', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
  ])('rejects %s (new root)', (_, traceparent) => {
    expect(fromHeaders({ traceparent }).source).toBe('none');
  });

  it('starts a new root for two different traceparents, joined with a comma (HTTP API) or repeated (REST, ALB)', () => {
    const other = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
    expect(fromHeaders({ traceparent: `${TRACEPARENT},${other}` }).source).toBe('none');
    const rest = { ...apiGatewayV1Event(), multiValueHeaders: { traceparent: [TRACEPARENT, other] } };
    expect(extractParentFromHttpEvent(rest).source).toBe('none');
  });

  it('accepts a future version with extra fields, reading the fields it knows', () => {
    expect(fromHeaders({ traceparent: `01-${TRACE_ID}-${SPAN_ID}-01-future` }).parent?.traceId).toBe(TRACE_ID);
  });

  it('keeps the level 2 random flag it receives', () => {
    expect(fromHeaders({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-03` }).parent?.traceFlags).toBe(0x03);
  });

  it('keeps an unsampled parent unsampled', () => {
    expect(fromHeaders({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-00` }).parent?.traceFlags).toBe(0);
  });
});

describe('W3C level 2 random flag on what is sent on', () => {
  const sentTraceparent = async (headers: Record<string, string>) => {
    let sent: string | undefined;
    const handler = traceHttpHandler(async () => {
      sent = currentTraceHeaders().traceparent;
      return { statusCode: 200 };
    });
    await handler(apiGatewayV2Event({ headers }), lambdaContext());
    return sent;
  };

  it('keeps the random flag of the trace it continues', async () => {
    expect(await sentTraceparent({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-03` })).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-03$`));
  });

  it('does not claim randomness for a trace that did not', async () => {
    expect(await sentTraceparent({ traceparent: TRACEPARENT })).toMatch(/-01$/);
  });

  it('sets it on a trace this function starts (the SDK generates random ids)', async () => {
    expect(await sentTraceparent({})).toMatch(/-03$/);
  });

  it('keeps it unsampled when the caller was not sampled', async () => {
    expect(await sentTraceparent({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-02` })).toMatch(/-02$/);
  });
});

describe('W3C tracestate', () => {
  it('keeps a valid tracestate, vendor keys with @ included', () => {
    const tracestate = 'rojo=00f067aa0ba902b7, tenant@vendor=x ,congo=t61rcWkgMzE';

    expect(fromHeaders({ traceparent: TRACEPARENT, tracestate }).parent?.traceState?.serialize()).toBe(
      'rojo=00f067aa0ba902b7,tenant@vendor=x,congo=t61rcWkgMzE',
    );
  });

  it.each([
    ['an upper-case key', 'Rojo=1'],
    ['a key of 257 characters', `${'a'.repeat(257)}=1`],
    ['a key that starts with "@"', '@foo=1,bar=2'],
    ['a key with a space before "="', 'foo =1'],
    ['a key with a dot', 'foo.bar=1'],
    ['an empty value', 'foo=,bar=3'],
    ['a value with a comma-free but illegal character', 'rojo=a\u0001b'],
    ['a value with "="', 'rojo=a=b'],
    ['a member without "="', 'rojo'],
    ['33 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
  ])('drops a tracestate with %s and keeps the parent', (_, tracestate) => {
    const found = fromHeaders({ traceparent: TRACEPARENT, tracestate });

    expect(found.parent?.spanId).toBe(SPAN_ID);
    expect(found.parent?.traceState).toBeUndefined();
  });

  // The key grammar of the current specification (and of the W3C test suite): "@" anywhere after the first
  // character, no tenant/vendor split and no vendor length limit of its own, 256 characters in all.
  it.each([
    ['a key ending in "@"', 'foo@=1,bar=2'],
    ['a key with "@@"', 'foo@@bar=1,bar=2'],
    ['a key with two "@"', 'foo@bar@baz=1,bar=2'],
    ['a 256-character key with "@" near the end', `${'t'.repeat(242)}@v=1`],
    ['a vendor part of 15 characters', `t@${'v'.repeat(15)}=1`],
    ['a key of 256 characters', `${'z'.repeat(256)}=1`],
    ['a key that starts with a digit', '0tenant=1'],
  ])('keeps %s, on REST and HTTP API events', (_, tracestate) => {
    for (const event of [
      apiGatewayV2Event({ headers: { traceparent: TRACEPARENT, tracestate } }),
      apiGatewayV1Event({ headers: { TraceParent: TRACEPARENT, TraceState: tracestate } }),
    ]) {
      expect(extractParentFromHttpEvent(event).parent?.traceState?.serialize()).toBe(tracestate);
    }
  });

  it('keeps a tracestate with a duplicated key, with the first value, whether in one header or two', () => {
    expect(fromHeaders({ traceparent: TRACEPARENT, tracestate: 'foo=1,congo=2,foo=3' }).parent?.traceState?.serialize()).toBe('foo=1,congo=2');
    // HTTP API (payload 2.0) joins repeated headers with commas; REST keeps each copy in multiValueHeaders.
    const rest = apiGatewayV1Event({ headers: { traceparent: TRACEPARENT } });
    rest.multiValueHeaders = { traceparent: [TRACEPARENT], tracestate: ['foo=1', 'foo=2'] };
    expect(extractParentFromHttpEvent(rest).parent?.traceState?.serialize()).toBe('foo=1');
  });

  // Repeated tracestate headers: HTTP API events join them with commas, REST events keep each in multiValueHeaders.
  const fromRepeated = (values: string[]) => {
    const httpApi = extractParentFromHttpEvent(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT, tracestate: values.join(',') } }));
    const rest = extractParentFromHttpEvent({ ...apiGatewayV1Event(), multiValueHeaders: { traceparent: [TRACEPARENT], tracestate: values } });
    expect(described(rest)).toEqual(described(httpApi));
    expect(httpApi.parent?.spanId).toBe(SPAN_ID);
    return httpApi.parent?.traceState?.serialize();
  };

  it('combines repeated headers in order, ignoring an empty one', () => {
    expect(fromRepeated(['foo=1,bar=2', 'rojo=1,congo=2', 'baz=3'])).toBe('foo=1,bar=2,rojo=1,congo=2,baz=3');
    expect(fromRepeated(['foo=1', ''])).toBe('foo=1');
    expect(fromRepeated(['', 'foo=1'])).toBe('foo=1');
    expect(fromRepeated([''])).toBeFalsy();
  });

  it('counts the members of every repeated header: 32 kept, 33 dropped', () => {
    const members = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `bar${from + i}=${from + i}`).join(',');
    expect(fromRepeated([members(1, 10), members(11, 20), members(21, 30), members(31, 32)])?.split(',')).toHaveLength(32);
    expect(fromRepeated([members(1, 10), members(11, 20), members(21, 30), members(31, 33)])).toBeUndefined();
  });

  it('keeps a duplicated key across repeated headers, once', () => {
    expect(fromRepeated(['foo=1', 'foo=2'])).toBe('foo=1');
    expect(fromRepeated(['foo=1', 'foo=1'])).toBe('foo=1');
  });

  it('puts a key it updates first and keeps at most 32 members', () => {
    const traceState = fromHeaders({ traceparent: TRACEPARENT, tracestate: Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(',') }).parent!.traceState!;
    const updated = traceState.set('k5', 'new').set('ours', 'x');
    expect(updated.serialize().split(',').slice(0, 2)).toEqual(['ours=x', 'k5=new']);
    expect(updated.serialize().split(',')).toHaveLength(32);
    expect(updated.get('k31')).toBeUndefined();
    expect(updated.unset('ours').get('ours')).toBeUndefined();
    expect(traceState.set('Bad Key', 'x')).toBe(traceState);
  });

  it('accepts 32 members and empty list members', () => {
    expect(isValidTraceState(Array.from({ length: 32 }, (_, i) => `k${i}=v`).join(','))).toBe(true);
    expect(isValidTraceState('a=1,, ,b=2')).toBe(true);
  });
});

describe('SNS and EventBridge sources', () => {
  it('reads the SNS envelope of a queue subscribed without raw delivery', () => {
    const record = sqsRecord({ body: snsEnvelopeBody('{"orderId":"o-1"}', { traceparent: TRACEPARENT }) });

    const found = extractParentFromSqsRecord(record);

    expect(found.source).toBe('sqs-sns-envelope');
    expect(found.parent?.spanId).toBe(SPAN_ID);
  });

  it('reads message attributes of raw SNS delivery like any SQS message', () => {
    const record = sqsRecord({
      body: '{"orderId":"o-1"}',
      messageAttributes: { traceparent: stringAttribute(TRACEPARENT) },
    });

    expect(extractParentFromSqsRecord(record).source).toBe('sqs-message-attributes');
  });

  it('leaves a body that only looks like an envelope alone', () => {
    expect(extractParentFromSqsRecord(sqsRecord({ body: '{"Type":"Notification", broken' })).source).toBe('none');
  });

  it('reads an SNS-triggered record', () => {
    expect(extractParentFromSnsRecord(snsRecord({ attributes: { traceparent: TRACEPARENT } })).parent?.spanId).toBe(SPAN_ID);
  });

  it('reads an EventBridge detail', () => {
    const found = extractParentFromEventBridgeEvent(eventBridgeEvent({ orderId: 'o-1', traceparent: TRACEPARENT }));

    expect(found.source).toBe('eventbridge-detail');
    expect(found.parent?.traceId).toBe(TRACE_ID);
    expect(extractParentFromEventBridgeEvent(eventBridgeEvent('text detail')).source).toBe('none');
  });
});
