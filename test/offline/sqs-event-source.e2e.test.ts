import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSqsServer } from 'local-aws-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { freePorts, offlineService, startOfflineStack, type OfflineStack } from '../../scripts/offline/stack';
import { startSqsEventSource, type SqsEventSource } from '../../scripts/offline/sqs-event-source';
import { waitForConnectedTrace } from '../../scripts/offline/trace-tree';
import { ORDER_FLOW } from './order-flow';

// Lambda's SQS event source mapping as `npm start` and `npm run offline` give it: retries, the dead-letter queue,
// the batching window (the whole stack), and the parts the example's functions cannot show, partial batch
// responses and FIFO groups (the event source alone, with a stand-in for serverless offline's invoke endpoint).
const credentials = { accessKeyId: 'offline', secretAccessKey: 'offline' };
const ORDER = { customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 1 }] };
const ORDERS = offlineService().queue('OrdersQueue');
const ORDERS_DLQ = offlineService().queue(ORDERS.deadLetterQueue!);
const PROCESS_SPAN = `process ${ORDERS.name}`;

async function count(sqs: SQSClient, queueUrl: string): Promise<number> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(Attributes.ApproximateNumberOfMessages) + Number(Attributes.ApproximateNumberOfMessagesNotVisible);
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('the offline SQS event source, with the example pipeline', () => {
  let stack: OfflineStack;
  let sqs: SQSClient;

  beforeAll(async () => {
    const [http, lambda, sqsPort, otlp] = await freePorts(4);
    stack = await startOfflineStack({ ports: { http, lambda, sqs: sqsPort, otlp }, buildFolder: `.esbuild-e2e-${http}` });
    sqs = new SQSClient({ endpoint: stack.sqsEndpoint, region: offlineService().region, credentials });
  }, 120_000);

  afterAll(async () => {
    sqs?.destroy();
    await stack?.stop();
  }, 30_000);

  async function postOrder(order: unknown): Promise<string> {
    const response = await fetch(stack.httpApiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(order),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await response.json()) as { traceId?: string };
    expect(response.status).toBe(202);
    return body.traceId!;
  }

  const spansOf = (traceId: string) => stack.receiver!.spans().filter((span) => span.traceId === traceId);
  const hopMs = (spans: ReceivedSpan[]) => {
    const sent = spans.find((span) => span.kind === 'PRODUCER')!;
    const processed = spans.find((span) => span.kind === 'CONSUMER')!;
    return Number(processed.startNs - sent.endNs) / 1e6;
  };

  it('retries a record its consumer reports failed, and moves it to the dead-letter queue after maxReceiveCount receives', { timeout: 90_000 }, async () => {
    // Act: an order notify-customer refuses
    const traceId = await postOrder({ ...ORDER, customerEmail: 'nobody@bounce.invalid' });

    // Assert: in the dead-letter queue, gone from the orders queue, each receive a consumer span of the same trace
    const dlqUrl = stack.queueUrls[ORDERS_DLQ.name];
    await until('the move to the dead-letter queue', 60_000, async () => ((await count(sqs, dlqUrl)) === 1 ? true : undefined));
    const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, MaxNumberOfMessages: 10 }));
    expect(Messages.map((message) => JSON.parse(message.Body!).customerEmail)).toEqual(['nobody@bounce.invalid']);
    expect(await count(sqs, stack.queueUrls[ORDERS.name])).toBe(0);
    const attempts = await until('the spans of every receive', 10_000, async () => {
      const processed = spansOf(traceId).filter((span) => span.name === PROCESS_SPAN);
      return processed.length === ORDERS.maxReceiveCount ? processed : undefined;
    });
    expect(attempts.map((span) => [span.attributes['traced_lambda.sqs.receive_count'], span.status])).toEqual(
      Array.from({ length: ORDERS.maxReceiveCount! }, (_, index) => [index + 1, 'ERROR']),
    );
  });

  it('invokes the consumer within the batching window, with the records sent together in one batch', { timeout: 90_000 }, async () => {
    // Arrange: the functions warm (a first invocation starts serverless offline's workers)
    const warm = await postOrder(ORDER);
    await waitForConnectedTrace(stack.receiver!, warm, { count: 6, functions: ORDER_FLOW }, 30_000);
    const traceIds = ['0af7651916cd43dd8448eb211c80319a', '0af7651916cd43dd8448eb211c80319b', '0af7651916cd43dd8448eb211c80319c'];

    // Act: an order through the API, and three orders sent to the queue in one call
    const posted = await postOrder(ORDER);
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: stack.queueUrls[ORDERS.name],
        Entries: traceIds.map((traceId, index) => ({
          Id: String(index),
          MessageBody: JSON.stringify({ ...ORDER, orderId: `o-batch-${index}`, createdAt: new Date().toISOString() }),
          MessageAttributes: { traceparent: { DataType: 'String', StringValue: `00-${traceId}-b7ad6b7169203331-01` } },
        })),
      }),
    );

    // Assert: the posted order waited out the window (1 s: four records never fill a batch of 10), not the seconds of
    // a batch filled by long polls; the three records went to process-order in one invocation
    const postedSpans = await waitForConnectedTrace(stack.receiver!, posted, { count: 6, functions: ORDER_FLOW }, 30_000);
    expect(hopMs(postedSpans)).toBeGreaterThanOrEqual(900);
    expect(hopMs(postedSpans)).toBeLessThan(5000);
    const consumers = await until('the three records processed', 30_000, async () => {
      const found = traceIds.map((traceId) => spansOf(traceId).find((span) => span.name === PROCESS_SPAN));
      return found.every(Boolean) ? (found as ReceivedSpan[]) : undefined;
    });
    expect(new Set(consumers.map((span) => span.attributes['faas.invocation_id'])).size).toBe(1);
  });
});

/**
 * A stand-in for serverless offline's Lambda invoke endpoint: records each event (and which function it was for, in
 * `invoked`) and answers as `respond` says.
 */
async function startInvokeEndpoint(
  respond: (event: SQSEvent) => unknown,
): Promise<{ url: string; events: SQSEvent[]; invoked: { functionName: string; bodies: string[] }[]; server: Server }> {
  const events: SQSEvent[] = [];
  const invoked: { functionName: string; bodies: string[] }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SQSEvent;
      events.push(event);
      // POST /2015-03-31/functions/{FunctionName}/invocations
      invoked.push({ functionName: decodeURIComponent(request.url!.split('/')[3]), bodies: event.Records.map((record) => record.body) });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(respond(event) ?? null));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, events, invoked, server };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

describe('the offline SQS event source, on its own', () => {
  const region = 'eu-west-1';
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** The emulator on a free port with `queues`, stopped after the tests; its endpoint. */
  async function startEmulator(queues: { QueueName: string; Attributes?: Record<string, unknown> }[]): Promise<string> {
    const [port] = await freePorts(1);
    const emulator = await createSqsServer({ port, hostname: '127.0.0.1', accountId: '000000000000', region, emulateQueueCreationLifecycle: false, queues });
    cleanups.push(() => closeServer(emulator));
    return `http://127.0.0.1:${port}`;
  }

  /** The emulator with one queue (and its dead-letter queue), the event source feeding `respond`. */
  async function feed(queueName: string, respond: (event: SQSEvent) => unknown, options: { fifo?: boolean; batchSize?: number; windowS?: number } = {}) {
    const dlqName = queueName.replace(/(\.fifo)?$/, '-dlq$1');
    const fifo = options.fifo ? { FifoQueue: true } : {};
    const sqsEndpoint = await startEmulator([
      { QueueName: dlqName, Attributes: fifo },
      {
        QueueName: queueName,
        Attributes: {
          ...fifo,
          // Longer than the batching window, as Lambda requires it to be longer than the function's timeout.
          VisibilityTimeout: 3,
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:${region}:000000000000:${dlqName}`, maxReceiveCount: 3 }),
        },
      },
    ]);
    const endpoint = await startInvokeEndpoint(respond);
    cleanups.push(() => closeServer(endpoint.server));
    const queueUrl = `${sqsEndpoint}/000000000000/${queueName}`;
    const source: SqsEventSource = startSqsEventSource(
      [
        {
          functionName: 'consumer',
          timeout: 5,
          queueName,
          queueUrl,
          queueArn: `arn:aws:sqs:${region}:000000000000:${queueName}`,
          event: {
            queue: 'Queue',
            batchSize: options.batchSize ?? 10,
            maximumBatchingWindow: options.windowS ?? 0,
            reportBatchItemFailures: true,
            enabled: true,
          },
        },
      ],
      { sqsEndpoint, lambdaEndpoint: endpoint.url, region, log: () => undefined },
    );
    cleanups.push(() => source.stop());
    const sqs = new SQSClient({ endpoint: sqsEndpoint, region, credentials });
    cleanups.push(async () => sqs.destroy());
    return { sqs, queueUrl, dlqUrl: `${sqsEndpoint}/000000000000/${dlqName}`, events: endpoint.events };
  }

  const bodies = (event: SQSEvent) => event.Records.map((record) => record.body);

  it('retries the whole batch when the response names no message of it', { timeout: 30_000 }, async () => {
    // Arrange: the first answer reports an itemIdentifier that is no message id
    let answers = 0;
    const { sqs, queueUrl, events } = await feed(
      'whole-batch',
      () => (answers++ === 0 ? { batchItemFailures: [{ itemIdentifier: 'not-a-message-id' }] } : {}),
      {
        windowS: 1,
      },
    );

    // Act
    await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: ['a', 'b'].map((body) => ({ Id: body, MessageBody: body })) }));

    // Assert: both records come again, as their second receive, then are deleted
    await until('the retry', 20_000, async () => (events.length >= 2 ? true : undefined));
    expect(events.map(bodies)).toEqual([
      ['a', 'b'],
      ['a', 'b'],
    ]);
    expect(events[1].Records.map((record) => record.attributes.ApproximateReceiveCount)).toEqual(['2', '2']);
    await until('the deletion', 5_000, async () => ((await count(sqs, queueUrl)) === 0 ? true : undefined));
  });

  it('keeps a FIFO message group in order across a failure, holding back the records after the failed one', { timeout: 30_000 }, async () => {
    // Arrange: the function fails g-2 the first time it sees it, and reports only that record
    let failedOnce = false;
    const { sqs, queueUrl, events } = await feed(
      'ordered.fifo',
      (event) => {
        const second = event.Records.find((record) => record.body === 'g-2');
        if (second && !failedOnce) {
          failedOnce = true;
          return { batchItemFailures: [{ itemIdentifier: second.messageId }] };
        }
        return {};
      },
      { fifo: true, windowS: 1 },
    );

    // Act
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: ['g-1', 'g-2', 'g-3'].map((body) => ({ Id: body, MessageBody: body, MessageGroupId: 'g', MessageDeduplicationId: body })),
      }),
    );

    // Assert: g-3 is not processed before g-2 has been; both come back, in order
    await until('the retry', 20_000, async () => (events.length >= 2 ? true : undefined));
    expect(events.map(bodies)).toEqual([
      ['g-1', 'g-2', 'g-3'],
      ['g-2', 'g-3'],
    ]);
    expect(events[0].Records.every((record) => record.attributes.MessageGroupId === 'g')).toBe(true);
    await until('the deletion', 5_000, async () => ((await count(sqs, queueUrl)) === 0 ? true : undefined));
  });

  it('feeds several consumers, each from its own queue, as the generator declares them', { timeout: 30_000 }, async () => {
    // Arrange: two queues on one emulator, each consumed by a function of its own
    const sqsEndpoint = await startEmulator([{ QueueName: 'orders' }, { QueueName: 'refunds' }]);
    const endpoint = await startInvokeEndpoint(() => ({}));
    cleanups.push(() => closeServer(endpoint.server));
    const mapping = (functionName: string, queueName: string, batchSize: number) => ({
      functionName,
      timeout: 5,
      queueName,
      queueUrl: `${sqsEndpoint}/000000000000/${queueName}`,
      queueArn: `arn:aws:sqs:${region}:000000000000:${queueName}`,
      event: { queue: queueName, batchSize, maximumBatchingWindow: 1, reportBatchItemFailures: true, enabled: true },
    });
    const source = startSqsEventSource([mapping('take-order', 'orders', 10), mapping('refund', 'refunds', 1)], {
      sqsEndpoint,
      lambdaEndpoint: endpoint.url,
      region,
      log: () => undefined,
    });
    cleanups.push(() => source.stop());
    const sqs = new SQSClient({ endpoint: sqsEndpoint, region, credentials });
    cleanups.push(async () => sqs.destroy());

    // Act
    const send = (queueName: string, bodies: string[]) =>
      sqs.send(
        new SendMessageBatchCommand({ QueueUrl: `${sqsEndpoint}/000000000000/${queueName}`, Entries: bodies.map((body) => ({ Id: body, MessageBody: body })) }),
      );
    await Promise.all([send('orders', ['o-1', 'o-2']), send('refunds', ['r-1', 'r-2'])]);

    // Assert: each function got its own queue's records only, in batches of its own size
    await until('every record delivered', 20_000, async () => (endpoint.invoked.flatMap((call) => call.bodies).length >= 4 ? true : undefined));
    const received = (functionName: string) => endpoint.invoked.filter((call) => call.functionName === functionName).map((call) => call.bodies);
    expect(received('take-order')).toEqual([['o-1', 'o-2']]);
    expect(received('refund').sort()).toEqual([['r-1'], ['r-2']]);
    expect(endpoint.invoked).toHaveLength(3);
  });
});
