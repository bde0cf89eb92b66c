import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { freePorts, functionPrefix, functionName, offlineService, startOfflineStack, type OfflineStack } from '../../scripts/offline/stack';
import { ORDER_FLOW } from './order-flow';
import { functionOf, waitForConnectedTrace } from '../../scripts/offline/trace-tree';

// The real offline stack on loopback: SQS emulator, serverless offline (esbuild bundles, worker threads),
// the SQS event source (scripts/offline/sqs-event-source.ts), the Lambda invoke endpoint and the local OTLP receiver, on free ports.
const ORDER = { customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 2 }] };
const TRACE_WAIT_MS = 45_000;
const ALL_FUNCTIONS = ORDER_FLOW;

let stack: OfflineStack;

beforeAll(async () => {
  const [http, lambda, sqs, otlp] = await freePorts(4);
  stack = await startOfflineStack({ ports: { http, lambda, sqs, otlp }, readyTimeoutMs: 90_000, buildFolder: `.esbuild-e2e-${http}` });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 30_000);

async function postOrder(url: string, headers: Record<string, string> = {}, body: unknown = ORDER) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, body: (await response.json()) as { orderId?: string; traceId?: string; message?: string } };
}

/** Waits until the trace holds `count` spans, connected, across the named functions. */
function waitForTrace(traceId: string, count: number, functions = ALL_FUNCTIONS): Promise<ReceivedSpan[]> {
  return waitForConnectedTrace(stack.receiver!, traceId, { count, functions }, TRACE_WAIT_MS);
}

/** `name KIND function` lines in tree order, indented by depth: the shape asserted below. */
function shapeOf(spans: ReceivedSpan[]): string[] {
  const ids = new Set(spans.map((span) => span.spanId));
  const sorted = [...spans].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  const lines: string[] = [];
  const walk = (span: ReceivedSpan, depth: number) => {
    lines.push(`${'  '.repeat(depth)}${span.name} ${span.kind} ${functionOf(span).replace(functionPrefix(), '')}`);
    sorted.filter((child) => child.parentSpanId === span.spanId).forEach((child) => walk(child, depth + 1));
  };
  sorted.filter((span) => !span.parentSpanId || !ids.has(span.parentSpanId)).forEach((root) => walk(root, 0));
  return lines;
}

// The deployed names in span names, as serverless.yml gives them offline.
const ORDERS = offlineService().queue('OrdersQueue').name;
const NOTIFY = functionName('notify-customer');

const PIPELINE_SHAPE = [
  'POST /orders SERVER create-order',
  `  send ${ORDERS} PRODUCER create-order`,
  `    process ${ORDERS} CONSUMER process-order`,
  `      invoke ${NOTIFY} CLIENT process-order`,
  `        ${NOTIFY} SERVER notify-customer`,
  '          send order confirmation INTERNAL notify-customer',
];

describe('the order pipeline offline', () => {
  it('carries one trace from each route through SQS and the invoke to notify-customer', { timeout: 90_000 }, async () => {
    // Arrange: three requests at once, so that they share a batch of the SQS event source
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const restTrace = '0af7651916cd43dd8448eb211c80319c';

    // Act
    const [plain, httpApi, rest] = await Promise.all([
      postOrder(stack.httpApiUrl),
      postOrder(stack.httpApiUrl, { traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` }),
      postOrder(stack.restApiUrl, { TraceParent: `00-${restTrace}-b7ad6b7169203331-01` }),
    ]);

    // Assert: accepted, each answering with the trace it belongs to
    expect([plain.status, httpApi.status, rest.status]).toEqual([202, 202, 202]);
    expect(httpApi.body.traceId).toBe(callerTrace);
    expect(rest.body.traceId).toBe(restTrace);
    expect(plain.body.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set([plain.body.traceId, httpApi.body.traceId, rest.body.traceId]).size).toBe(3);

    const [plainSpans, httpApiSpans, restSpans] = await Promise.all(
      [plain, httpApi, rest].map(({ body }) => waitForTrace(body.traceId!, PIPELINE_SHAPE.length)),
    );
    for (const spans of [plainSpans, httpApiSpans, restSpans]) expect(shapeOf(spans)).toEqual(PIPELINE_SHAPE);

    // No header: a new root. A header in any case: the first span is the caller's child.
    const rootOf = (spans: ReceivedSpan[]) => spans.find((span) => span.name === 'POST /orders')!;
    expect(rootOf(plainSpans).parentSpanId).toBeUndefined();
    expect(rootOf(httpApiSpans).parentSpanId).toBe('00f067aa0ba902b7');
    expect(rootOf(restSpans).parentSpanId).toBe('b7ad6b7169203331');
    expect(rootOf(restSpans).attributes['http.route']).toBe('/orders');

    const consumer = plainSpans.find((span) => span.kind === 'CONSUMER')!;
    expect(consumer.attributes).toMatchObject({ 'messaging.system': 'aws_sqs', 'messaging.operation.type': 'process' });
    expect(consumer.attributes['messaging.message.id']).toEqual(expect.any(String));
  });

  it('records a failed notification as errors on the consumer side of the same trace', { timeout: 90_000 }, async () => {
    const { status, body } = await postOrder(stack.httpApiUrl, {}, { ...ORDER, customerEmail: 'nobody@bounce.invalid' });

    expect(status).toBe(202);
    const spans = await waitForTrace(body.traceId!, PIPELINE_SHAPE.length);
    const statusOf = (name: string) => spans.find((span) => span.name === name)?.status;
    expect(statusOf('send order confirmation')).toBe('ERROR');
    expect(statusOf(NOTIFY)).toBe('ERROR');
    expect(statusOf(`invoke ${NOTIFY}`)).toBe('ERROR');
    expect(statusOf(`process ${ORDERS}`)).toBe('ERROR');
    expect(statusOf('POST /orders')).toBe('UNSET');
  });

  it('answers 400 to an invalid order and sends nothing on', async () => {
    const { status, body } = await postOrder(stack.httpApiUrl, {}, { customerEmail: 'ada@example.com', items: [] });

    expect(status).toBe(400);
    expect(body.message).toMatch(/not valid/);
  });

  it('continues a trace given to the offline Lambda invoke endpoint in the client context', async () => {
    const lambda = new LambdaClient({
      endpoint: stack.lambdaEndpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
    });
    const traceId = 'a3ce929d0e0e47364bf92f3577b34da6';
    const clientContext = { custom: { traceparent: `00-${traceId}-0123456789abcdef-01` } };

    const response = await lambda.send(
      new InvokeCommand({
        FunctionName: functionName('notify-customer'),
        ClientContext: Buffer.from(JSON.stringify(clientContext)).toString('base64'),
        Payload: Buffer.from(JSON.stringify({ orderId: 'o-direct', customerEmail: 'ada@example.com', itemCount: 1 })),
      }),
    );

    expect(response.FunctionError).toBeUndefined();
    expect(JSON.parse(Buffer.from(response.Payload!).toString())).toMatchObject({ orderId: 'o-direct', delivered: true });
    const spans = await waitForTrace(traceId, 2, [functionName('notify-customer')]);
    expect(shapeOf(spans)).toEqual([`${NOTIFY} SERVER notify-customer`, '  send order confirmation INTERNAL notify-customer']);
    expect(spans.find((span) => span.kind === 'SERVER')!.parentSpanId).toBe('0123456789abcdef');
    lambda.destroy();
  });
});
