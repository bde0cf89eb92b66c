import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';

// Received spans shaped like the pipeline's: the trace `npm start` prints, the same flow failing in
// notify-customer (with a span whose name and attributes are markup), and a trace that starts with a link to the
// first one's producer, as the SQS `links` strategy makes; apart from these, a trace whose message is retried. Each trace lists its spans in the order the page must
// show them, with their depth.

const BASE_NS = 1_767_225_600_000_000_000n;
const PREFIX = 'order-pipeline-offline-';
export const HOSTILE_NAME = '<img src=x onerror=alert(1)>';
export const HOSTILE_ATTRIBUTE = '</script><script>alert(2)</script>';

export interface FixtureSpan {
  span: ReceivedSpan;
  depth: number;
}

export interface FixtureTrace {
  traceId: string;
  spans: FixtureSpan[];
}

function resourceOf(service: string): Record<string, unknown> {
  const fn = service.startsWith(PREFIX) ? { 'faas.name': service, 'cloud.provider': 'aws', 'cloud.region': 'eu-west-1' } : {};
  return { 'service.name': service, 'telemetry.sdk.language': 'nodejs', ...fn };
}

function span(
  traceId: string,
  depth: number,
  fields: {
    id: string;
    parent?: string;
    name: string;
    kind: ReceivedSpan['kind'];
    service: string;
    startMs: number;
    durationMs: number;
  } & Partial<ReceivedSpan>,
): FixtureSpan {
  const { id, parent, service, startMs, durationMs, ...rest } = fields;
  const startNs = BASE_NS + BigInt(Math.round(startMs * 1e6));
  return {
    depth,
    span: {
      traceId,
      spanId: id,
      parentSpanId: parent,
      startNs,
      endNs: startNs + BigInt(Math.round(durationMs * 1e6)),
      status: 'UNSET',
      attributes: {},
      resource: resourceOf(service),
      links: [],
      ...rest,
    },
  };
}

const OK_TRACE = 'fca6f152239fe231c8a69a2f78f03927';
const FAILED_TRACE = '0af7651916cd43dd8448eb211c80319c';
const LINKED_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const QUEUE = `${PREFIX}orders`;

export const okTrace: FixtureTrace = {
  traceId: OK_TRACE,
  spans: [
    span(OK_TRACE, 0, {
      id: 'a000000000000001',
      name: 'npm start',
      kind: 'INTERNAL',
      service: 'npm-start',
      startMs: 0,
      durationMs: 130.9,
      attributes: { 'order.count': 1 },
    }),
    span(OK_TRACE, 1, {
      id: 'a000000000000002',
      parent: 'a000000000000001',
      name: 'POST',
      kind: 'CLIENT',
      service: 'npm-start',
      startMs: 1,
      durationMs: 129.5,
      attributes: { 'http.request.method': 'POST', 'url.full': 'http://127.0.0.1:3000/orders', 'http.response.status_code': 202 },
    }),
    span(OK_TRACE, 2, {
      id: 'a000000000000003',
      parent: 'a000000000000002',
      name: 'POST /orders',
      kind: 'SERVER',
      service: `${PREFIX}create-order`,
      startMs: 103,
      durationMs: 20.3,
      attributes: { 'http.route': '/orders', 'http.response.status_code': 202, 'faas.trigger': 'http' },
    }),
    span(OK_TRACE, 3, {
      id: 'a000000000000004',
      parent: 'a000000000000003',
      name: `send ${QUEUE}`,
      kind: 'PRODUCER',
      service: `${PREFIX}create-order`,
      startMs: 104,
      durationMs: 18.9,
      attributes: { 'messaging.system': 'aws_sqs', 'messaging.destination.name': QUEUE, 'messaging.operation.type': 'send' },
    }),
    span(OK_TRACE, 4, {
      id: 'a000000000000005',
      parent: 'a000000000000004',
      name: `process ${QUEUE}`,
      kind: 'CONSUMER',
      service: `${PREFIX}process-order`,
      startMs: 10_122,
      durationMs: 88.1,
      attributes: { 'messaging.system': 'aws_sqs', 'messaging.destination.name': QUEUE, 'messaging.message.id': 'm-1', 'faas.trigger': 'pubsub' },
    }),
    span(OK_TRACE, 5, {
      id: 'a000000000000006',
      parent: 'a000000000000005',
      name: `invoke ${PREFIX}notify-customer`,
      kind: 'CLIENT',
      service: `${PREFIX}process-order`,
      startMs: 10_123,
      durationMs: 87.2,
      attributes: { 'rpc.system': 'aws-api', 'rpc.method': 'Invoke', 'faas.invoked_name': `${PREFIX}notify-customer` },
    }),
    span(OK_TRACE, 6, {
      id: 'a000000000000007',
      parent: 'a000000000000006',
      name: `${PREFIX}notify-customer`,
      kind: 'SERVER',
      service: `${PREFIX}notify-customer`,
      startMs: 10_194,
      durationMs: 5.9,
      attributes: { 'faas.trigger': 'other' },
    }),
    span(OK_TRACE, 7, {
      id: 'a000000000000008',
      parent: 'a000000000000007',
      name: 'send order confirmation',
      kind: 'INTERNAL',
      service: `${PREFIX}notify-customer`,
      startMs: 10_195,
      durationMs: 5.5,
      attributes: { 'order.id': 'o-1' },
    }),
  ],
};

export const failedTrace: FixtureTrace = {
  traceId: FAILED_TRACE,
  spans: [
    span(FAILED_TRACE, 0, {
      id: 'b000000000000001',
      name: 'POST /orders',
      kind: 'SERVER',
      service: `${PREFIX}create-order`,
      startMs: 20_000,
      durationMs: 15.2,
      attributes: { 'http.route': '/orders', 'http.response.status_code': 202 },
    }),
    span(FAILED_TRACE, 1, {
      id: 'b000000000000002',
      parent: 'b000000000000001',
      name: `send ${QUEUE}`,
      kind: 'PRODUCER',
      service: `${PREFIX}create-order`,
      startMs: 20_002,
      durationMs: 11.4,
    }),
    span(FAILED_TRACE, 2, {
      id: 'b000000000000003',
      parent: 'b000000000000002',
      name: `process ${QUEUE}`,
      kind: 'CONSUMER',
      service: `${PREFIX}process-order`,
      startMs: 21_500,
      durationMs: 60,
      status: 'ERROR',
      statusMessage: 'notify-customer failed',
    }),
    span(FAILED_TRACE, 3, {
      id: 'b000000000000004',
      parent: 'b000000000000003',
      name: `invoke ${PREFIX}notify-customer`,
      kind: 'CLIENT',
      service: `${PREFIX}process-order`,
      startMs: 21_501,
      durationMs: 50,
      status: 'ERROR',
      statusMessage: 'notify-customer failed',
    }),
    span(FAILED_TRACE, 4, {
      id: 'b000000000000005',
      parent: 'b000000000000004',
      name: `${PREFIX}notify-customer`,
      kind: 'SERVER',
      service: `${PREFIX}notify-customer`,
      startMs: 21_520,
      durationMs: 20,
      status: 'ERROR',
      statusMessage: 'no mail server for ada@example.invalid',
    }),
    span(FAILED_TRACE, 5, {
      id: 'b000000000000006',
      parent: 'b000000000000005',
      name: 'send order confirmation',
      kind: 'INTERNAL',
      service: `${PREFIX}notify-customer`,
      startMs: 21_521,
      durationMs: 12,
      status: 'ERROR',
      statusMessage: 'no mail server for ada@example.invalid',
      attributes: { 'error.type': 'DeliveryError', 'order.id': 'o-2' },
      events: [
        {
          name: 'exception',
          timeNs: BASE_NS + 21_532_000_000n,
          attributes: {
            'exception.type': 'DeliveryError',
            'exception.message': 'no mail server for ada@example.invalid',
            'exception.stacktrace': 'DeliveryError: no mail server for ada@example.invalid\n    at deliver (functions/notify-customer.ts:22:15)',
          },
        },
      ],
    }),
    span(FAILED_TRACE, 5, {
      id: 'b000000000000007',
      parent: 'b000000000000005',
      name: HOSTILE_NAME,
      kind: 'INTERNAL',
      service: `${PREFIX}notify-customer`,
      startMs: 21_534,
      durationMs: 1,
      attributes: { 'customer.note': HOSTILE_ATTRIBUTE },
    }),
  ],
};

export const linkedTrace: FixtureTrace = {
  traceId: LINKED_TRACE,
  spans: [
    span(LINKED_TRACE, 0, {
      id: 'c000000000000001',
      name: `process ${QUEUE}`,
      kind: 'CONSUMER',
      service: `${PREFIX}process-order`,
      startMs: 30_000,
      durationMs: 40,
      links: [{ traceId: OK_TRACE, spanId: 'a000000000000004', attributes: { 'messaging.message.id': 'm-1' } }],
    }),
  ],
};

// One order's message received three times, as Lambda's event source retries a record reported as failed: the
// batching window before the first receive, then a visibility timeout before each retry. Each receive continues
// the producer's trace, so the three are siblings under `send`.
const RETRIED_TRACE = '5b8efff798038103d269b633813fc60c';
const retriedConsumer = { kind: 'CONSUMER' as const, service: `${PREFIX}process-order`, name: `process ${QUEUE}` };
const retriedAttributes = { 'messaging.system': 'aws_sqs', 'messaging.destination.name': QUEUE, 'messaging.message.id': 'm-9' };
export const retriedTrace: FixtureTrace = {
  traceId: RETRIED_TRACE,
  spans: [
    span(RETRIED_TRACE, 0, { id: 'd000000000000001', name: 'POST /orders', kind: 'SERVER', service: `${PREFIX}create-order`, startMs: 40_000, durationMs: 15 }),
    span(RETRIED_TRACE, 1, {
      id: 'd000000000000002',
      parent: 'd000000000000001',
      name: `send ${QUEUE}`,
      kind: 'PRODUCER',
      service: `${PREFIX}create-order`,
      startMs: 40_002,
      durationMs: 11,
    }),
    span(RETRIED_TRACE, 2, {
      ...retriedConsumer,
      id: 'd000000000000003',
      parent: 'd000000000000002',
      startMs: 41_020,
      durationMs: 40,
      status: 'ERROR',
      statusMessage: 'notify-customer failed',
      attributes: retriedAttributes,
    }),
    span(RETRIED_TRACE, 3, {
      id: 'd000000000000004',
      parent: 'd000000000000003',
      name: `invoke ${PREFIX}notify-customer`,
      kind: 'CLIENT',
      service: `${PREFIX}process-order`,
      startMs: 41_021,
      durationMs: 30,
      status: 'ERROR',
    }),
    span(RETRIED_TRACE, 2, {
      ...retriedConsumer,
      id: 'd000000000000005',
      parent: 'd000000000000002',
      startMs: 70_860,
      durationMs: 35,
      status: 'ERROR',
      statusMessage: 'notify-customer failed',
      attributes: retriedAttributes,
    }),
    span(RETRIED_TRACE, 2, {
      ...retriedConsumer,
      id: 'd000000000000006',
      parent: 'd000000000000002',
      startMs: 102_095,
      durationMs: 50,
      attributes: retriedAttributes,
    }),
    span(RETRIED_TRACE, 3, {
      id: 'd000000000000007',
      parent: 'd000000000000006',
      name: `invoke ${PREFIX}notify-customer`,
      kind: 'CLIENT',
      service: `${PREFIX}process-order`,
      startMs: 102_097,
      durationMs: 40,
    }),
  ],
};

export const fixtureTraces = [okTrace, failedTrace, linkedTrace];

/** Every fixture span, children before their parents (exports arrive in any order). */
export function fixtureSpans(traces: FixtureTrace[] = fixtureTraces): ReceivedSpan[] {
  return traces.flatMap((trace) => trace.spans.map(({ span }) => span)).reverse();
}
