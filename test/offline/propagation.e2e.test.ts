import { request } from 'node:http';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageBatchCommand, SQSClient, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectIntoSqsMessage, invokeFunction, readTelemetryConfig, sendMessage, startRun, startTelemetry, type Run } from '../../lib';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { freePorts, functionName, offlineService, startOfflineStack, type OfflineStack } from '../../scripts/offline/stack';
import { waitForConnectedTrace } from '../../scripts/offline/trace-tree';

// The propagation paths beyond the main flow, on the real offline stack: this test process is the producer
// (traced with the kit, exporting to the stack's receiver), the offline functions are the consumers.
const PRODUCER = 'e2e-producer';
const TRACE_WAIT_MS = 45_000;
const credentials = { accessKeyId: 'offline', secretAccessKey: 'offline' };
const order = (n: number, email = 'ada@example.com') =>
  JSON.stringify({ orderId: `e2e-${n}-${Date.now()}`, createdAt: new Date().toISOString(), customerEmail: email, items: [{ sku: 'BOOK-42', quantity: n }] });

let stack: OfflineStack;
let sqs: SQSClient;
let lambda: LambdaClient;

beforeAll(async () => {
  const [http, lambdaPort, sqsPort, otlp] = await freePorts(4);
  stack = await startOfflineStack({ ports: { http, lambda: lambdaPort, sqs: sqsPort, otlp }, readyTimeoutMs: 90_000, buildFolder: `.esbuild-e2e-${http}` });
  startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: PRODUCER, OTEL_EXPORTER_OTLP_ENDPOINT: stack.receiver!.endpoint }));
  sqs = new SQSClient({ endpoint: stack.sqsEndpoint, region: 'eu-west-1', credentials });
  lambda = new LambdaClient({ endpoint: stack.lambdaEndpoint, region: 'eu-west-1', credentials });
}, 120_000);

afterAll(async () => {
  sqs?.destroy();
  lambda?.destroy();
  await stack?.stop();
}, 30_000);

function traceIdOf(run: Run): string {
  return run.span.spanContext().traceId;
}

function waitForTrace(traceId: string, count: number, functions: string[]): Promise<ReceivedSpan[]> {
  return waitForConnectedTrace(stack.receiver!, traceId, { count, functions }, TRACE_WAIT_MS);
}

const byName = (spans: ReceivedSpan[], name: string) => spans.filter((span) => span.name === name);
const QUEUE = offlineService().queue('OrdersQueue').name;
const CONSUMERS = [PRODUCER, functionName('process-order'), functionName('notify-customer')];

/** POSTs an order with the given raw header lines (a name may repeat) and answers the 202's trace id. */
function postOrderWithHeaders(url: string, headers: [string, string][]): Promise<{ status: number; traceId?: string }> {
  const body = JSON.stringify({ customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 1 }] });
  return new Promise((resolve, reject) => {
    // Given as raw lines, a request gets no default headers from Node.js: Host is written here.
    const raw = [['host', new URL(url).host], ...headers, ['content-type', 'application/json']].flat();
    const sent = request(url, { method: 'POST', headers: raw, timeout: 15_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, traceId: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}').traceId }));
    });
    sent.on('timeout', () => sent.destroy(new Error('no answer within 15 s')));
    sent.on('error', reject);
    sent.end(body);
  });
}

describe('repeated traceparent headers', () => {
  const first = '00-11111111111111111111111111111111-1111111111111111-01';
  const second = '00-22222222222222222222222222222222-2222222222222222-01';

  it('start a new trace on both routes when they differ (HTTP API: joined with commas, as API Gateway does)', { timeout: 30_000 }, async () => {
    for (const url of [stack.httpApiUrl, stack.restApiUrl]) {
      const answer = await postOrderWithHeaders(url, [
        ['traceparent', first],
        ['traceparent', second],
      ]);
      expect(answer.status, url).toBe(202);
      expect(answer.traceId, url).toMatch(/^[0-9a-f]{32}$/);
      expect([first.slice(3, 35), second.slice(3, 35)], url).not.toContain(answer.traceId);
    }
    // One copy is continued, on both routes.
    for (const url of [stack.httpApiUrl, stack.restApiUrl]) {
      expect((await postOrderWithHeaders(url, [['traceparent', first]])).traceId, url).toBe(first.slice(3, 35));
    }
  });
});

describe('propagation paths offline', () => {
  it('continues each message of one batch in its own trace', { timeout: 90_000 }, async () => {
    // Arrange: three producers, each its own trace, whose messages are enqueued together (one batch)
    const runs = [1, 2, 3].map((n) => startRun(`producer ${n}`));
    const entries = runs.map((run, index) =>
      injectIntoSqsMessage<SendMessageBatchRequestEntry>({ Id: `m${index}`, MessageBody: order(index + 1) }, run.context),
    );

    // Act
    await sqs.send(new SendMessageBatchCommand({ QueueUrl: stack.queueUrl, Entries: entries }));
    await Promise.all(runs.map((run) => run.end()));

    // Assert
    const traces = await Promise.all(runs.map((run) => waitForTrace(traceIdOf(run), 5, CONSUMERS)));
    const consumers = traces.map((spans) => byName(spans, `process ${QUEUE}`));
    consumers.forEach((spans, index) => {
      expect(spans).toHaveLength(1);
      expect(spans[0].parentSpanId).toBe(runs[index].span.spanContext().spanId);
    });
    const invocations = new Set(consumers.map(([span]) => span.attributes['faas.invocation_id']));
    expect(invocations.size).toBe(1);
  });

  it('continues a message that already has 10 attributes through AWSTraceHeader', { timeout: 90_000 }, async () => {
    const run = startRun('producer with full attributes');
    const attributes = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`attr${i}`, { DataType: 'String', StringValue: `v${i}` }]));

    await run.inside(() => sendMessage(sqs, { QueueUrl: stack.queueUrl, MessageBody: order(4), MessageAttributes: attributes }));
    await run.end();

    const spans = await waitForTrace(traceIdOf(run), 6, CONSUMERS);
    const [send] = byName(spans, `send ${QUEUE}`);
    const [consumer] = byName(spans, `process ${QUEUE}`);
    expect(consumer.parentSpanId).toBe(send.spanId);
  });

  it('reports a failing record in batchItemFailures, with its span in error', { timeout: 90_000 }, async () => {
    const run = startRun('producer of an undeliverable order');

    await run.inside(() => sendMessage(sqs, { QueueUrl: stack.queueUrl, MessageBody: order(5, 'nobody@bounce.invalid') }));
    await run.end();

    const spans = await waitForTrace(traceIdOf(run), 6, CONSUMERS);
    const [consumer] = byName(spans, `process ${QUEUE}`);
    expect(consumer.status).toBe('ERROR');
    const messageId = String(consumer.attributes['messaging.message.id']);
    await expect(stack.waitForOutput(`SQS message ${messageId} failed and is reported in batchItemFailures`, 10_000)).resolves.toBeUndefined();
  });

  it('continues the trace across an asynchronous (Event) invoke', { timeout: 90_000 }, async () => {
    const run = startRun('producer of an async invoke');

    const response = await run.inside(() =>
      invokeFunction(lambda, {
        FunctionName: functionName('notify-customer'),
        InvocationType: 'Event',
        Payload: Buffer.from(JSON.stringify({ orderId: 'o-async', customerEmail: 'ada@example.com', itemCount: 1 })),
      }),
    );
    await run.end();

    expect(response.StatusCode).toBe(202);
    const spans = await waitForTrace(traceIdOf(run), 4, [PRODUCER, functionName('notify-customer')]);
    const [invoke] = byName(spans, `invoke ${functionName('notify-customer')}`);
    const [server] = byName(spans, functionName('notify-customer'));
    expect(server.parentSpanId).toBe(invoke.spanId);
    // The handler got the original payload, not the envelope: it would have thrown a TypeError otherwise.
    expect(server.status).toBe('UNSET');
  });

  it('keeps answering sync invokes without a client context as new traces', async () => {
    const response = await lambda.send(
      new InvokeCommand({
        FunctionName: functionName('notify-customer'),
        Payload: Buffer.from(JSON.stringify({ orderId: 'o-plain', customerEmail: 'ada@example.com', itemCount: 1 })),
      }),
    );

    expect(response.FunctionError).toBeUndefined();
    expect(JSON.parse(Buffer.from(response.Payload!).toString())).toMatchObject({ orderId: 'o-plain', delivered: true });
  });
});
