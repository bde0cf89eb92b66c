import { createTraceState, SpanKind } from '@opentelemetry/api';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { describe, expect, it } from 'vitest';
import { startRun, withSpan } from '../../lib';
import { captureSpans } from '../../lib/testing';
import { decodeTracesRequest } from '../../scripts/offline/otlp-receiver';
import { isConnectedTrace, renderTraceTree } from '../../scripts/offline/trace-tree';
import { fixtureSpans, okTrace, retriedTrace } from './trace-page-fixture';

// What the local receiver makes of an OTLP/JSON request, and how npm start prints it.
async function exportedTrace() {
  const capture = captureSpans({ AWS_LAMBDA_FUNCTION_NAME: 'order-pipeline-offline-create-order' });
  const run = startRun('npm start');
  await run.inside(() => withSpan('POST /orders', () => withSpan('send orders', async () => undefined)));
  await run.end(new Error('stopped'));
  const body = JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(capture.spans())!).toString('utf8'));
  return { spans: capture.spans(), received: decodeTracesRequest(body) };
}

describe('the local OTLP receiver and the trace tree', () => {
  it('decodes the official JSON encoding back to the same spans', async () => {
    const { spans, received } = await exportedTrace();

    expect(received.map((span) => [span.name, span.spanId, span.parentSpanId ?? null, span.kind, span.status])).toEqual(
      spans.map((span) => [
        span.name,
        span.spanContext().spanId,
        span.parentSpanContext?.spanId ?? null,
        'INTERNAL',
        span.name === 'npm start' ? 'ERROR' : 'UNSET',
      ]),
    );
    expect(received[0].resource['faas.name']).toBe('order-pipeline-offline-create-order');
    expect(received.every((span) => span.endNs >= span.startNs)).toBe(true);
  });

  it('prints one tree with kind, function and status, and knows when it is connected', async () => {
    const { received } = await exportedTrace();

    const lines = renderTraceTree(received, { functionPrefix: 'order-pipeline-offline-' }).split('\n');

    expect(lines[0]).toMatch(/^trace [0-9a-f]{32} · 3 spans · 1 service · /);
    expect(lines.slice(2).map((line) => line.replace(/\s+[+\d.]+ ms\s+[\d.]+ ms/, '').trimEnd())).toEqual([
      'npm start          INTERNAL  create-order  ERROR Error: stopped',
      '└─ POST /orders    INTERNAL  create-order',
      '   └─ send orders  INTERNAL  create-order',
    ]);
    expect(isConnectedTrace(received, ['order-pipeline-offline-create-order'])).toBe(true);
    const withoutMiddle = received.filter((span) => span.name !== 'POST /orders');
    expect(isConnectedTrace(withoutMiddle, ['order-pipeline-offline-create-order'])).toBe(false);
    expect(isConnectedTrace(received, ['order-pipeline-offline-notify-customer'])).toBe(false);
  });

  it('shows the HTTP status a SERVER span answered with, and why a span failed', () => {
    const common = { traceId: 'a'.repeat(32), startNs: 0n, endNs: 2_000_000n, resource: { 'faas.name': 'order-pipeline-offline-create-order' } };
    const lines = renderTraceTree(
      [
        {
          ...common,
          spanId: '1',
          name: 'POST /orders',
          kind: 'SERVER',
          status: 'ERROR',
          statusMessage: 'Internal Server Error',
          attributes: { 'http.response.status_code': 500 },
        },
        {
          ...common,
          spanId: '2',
          parentSpanId: '1',
          name: 'send orders',
          kind: 'PRODUCER',
          status: 'ERROR',
          statusMessage: 'The queue does not exist',
          attributes: { 'error.type': 'QueueDoesNotExist' },
        },
        { ...common, spanId: '3', name: 'POST /orders', kind: 'SERVER', status: 'UNSET', attributes: { 'http.response.status_code': 202 } },
      ],
      { functionPrefix: 'order-pipeline-offline-' },
    ).split('\n');

    expect(lines.slice(2).map((line) => line.replace(/\s+[+\d.]+ ms\s+[\d.]+ ms\s+/, ' | ').trimEnd())).toEqual([
      'POST /orders    SERVER    create-order | 500 ERROR Internal Server Error',
      '└─ send orders  PRODUCER  create-order | ERROR QueueDoesNotExist: The queue does not exist',
      'POST /orders    SERVER    create-order | 202',
    ]);
  });

  it('marks each long idle gap with a line of its own, and keeps every start offset true', () => {
    const lines = renderTraceTree(fixtureSpans([okTrace]), { functionPrefix: 'order-pipeline-offline-' }).split('\n');

    expect(lines.slice(2).map((line) => line.replace(/\s{2,}(INTERNAL|SERVER|CLIENT|PRODUCER|CONSUMER)\s+\S+\s+(\+[\d.]+ ms).*$/, ' $2'))).toEqual([
      'npm start +0.0 ms',
      '└─ POST +1.0 ms',
      '   └─ POST /orders +103.0 ms',
      '      └─ send order-pipeline-offline-orders +104.0 ms',
      '         ⋯ 10.0 s idle ⋯',
      '         └─ process order-pipeline-offline-orders +10122.0 ms',
      '            └─ invoke order-pipeline-offline-notify-customer +10123.0 ms',
      '               └─ order-pipeline-offline-notify-customer +10194.0 ms',
      '                  └─ send order confirmation +10195.0 ms',
    ]);
  });

  it("numbers a retried record's receives in one trace, with the gap before each", () => {
    const lines = renderTraceTree(fixtureSpans([retriedTrace]), { functionPrefix: 'order-pipeline-offline-' }).split('\n');

    expect(lines[0]).toMatch(/ · 7 spans · 2 services · 62145\.0 ms$/);
    expect(
      lines.slice(2).map((line) => line.replace(/\s{2,}(INTERNAL|SERVER|CLIENT|PRODUCER|CONSUMER)\s+\S+\s+(\+[\d.]+ ms)\s+([\d.]+ ms).*$/, ' $2 $3')),
    ).toEqual([
      'POST /orders +0.0 ms 15.0 ms',
      '└─ send order-pipeline-offline-orders +2.0 ms 11.0 ms',
      '   ⋯ 1.0 s idle ⋯',
      '   ├─ process order-pipeline-offline-orders · attempt 1 of 3 +1020.0 ms 40.0 ms',
      '   │  └─ invoke order-pipeline-offline-notify-customer +1021.0 ms 30.0 ms',
      '   │  ⋯ 29.8 s idle ⋯',
      '   ├─ process order-pipeline-offline-orders · attempt 2 of 3 +30860.0 ms 35.0 ms',
      '   │  ⋯ 31.2 s idle ⋯',
      '   └─ process order-pipeline-offline-orders · attempt 3 of 3 +62095.0 ms 50.0 ms',
      '      └─ invoke order-pipeline-offline-notify-customer +62097.0 ms 40.0 ms',
    ]);
  });

  it('decodes span links with their trace, span, trace state and attributes', async () => {
    const capture = captureSpans({ OTEL_SERVICE_NAME: 'process-order' });
    const producer = { traceId: 'b'.repeat(32), spanId: 'c'.repeat(16), traceFlags: 1, isRemote: true, traceState: createTraceState('vendor=1') };
    capture.telemetry.tracer
      .startSpan('process orders', { kind: SpanKind.CONSUMER, links: [{ context: producer, attributes: { 'messaging.message.id': 'm-1' } }] })
      .end();
    capture.telemetry.tracer.startSpan('unlinked').end();
    const body = JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(capture.spans())!).toString('utf8'));

    const [linked, unlinked] = decodeTracesRequest(body);

    expect(linked.links).toEqual([{ traceId: 'b'.repeat(32), spanId: 'c'.repeat(16), traceState: 'vendor=1', attributes: { 'messaging.message.id': 'm-1' } }]);
    expect(unlinked.links).toEqual([]);
    expect(decodeTracesRequest({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 't', spanId: 's', name: 'no links field' }] }] }] })[0].links).toEqual([]);
  });

  it("decodes span events: a failure's exception with its type, message and stack", async () => {
    const { spans, received } = await exportedTrace();

    const failed = received.find((span) => span.name === 'npm start')!;
    expect(failed.events?.map((event) => event.name)).toEqual(['exception']);
    expect(failed.events![0].attributes).toMatchObject({ 'exception.type': 'Error', 'exception.message': 'stopped' });
    expect(failed.events![0].attributes['exception.stacktrace']).toMatch(/^Error: stopped\n\s+at /);
    const [seconds, nanos] = spans.find((span) => span.name === 'npm start')!.events[0].time;
    expect(failed.events![0].timeNs).toBe(BigInt(seconds) * 1_000_000_000n + BigInt(nanos));
    expect(received.find((span) => span.name === 'send orders')!.events).toEqual([]);
  });

  it('rejects a body that is not an OTLP traces request', () => {
    expect(() => decodeTracesRequest({ hello: 'world' })).toThrow(/resourceSpans/);
  });
});
