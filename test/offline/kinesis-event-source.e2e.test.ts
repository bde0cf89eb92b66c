import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { KinesisStreamEvent } from 'aws-lambda';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createSqsServer } from 'local-aws-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClientOptions } from '../../functions/config';
import { putRecords, withSpan } from '../../lib';
import { captureSpans, type SpanCapture } from '../../lib/testing';
import { offlineKinesisClient, startKinesisEmulator } from '../../scripts/offline/kinesis-emulator';
import { startKinesisEventSource } from '../../scripts/offline/kinesis-event-source';
import type { DeclaredKinesisEvent } from '../../scripts/offline/service';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { freePorts, type OfflineStack } from '../../scripts/offline/stack';

// Lambda's Kinesis event source mapping offline, the event source alone on the Kinesis and SQS emulators, with a
// stand-in for serverless offline's invoke endpoint that answers as each test says.
const region = 'eu-west-1';
const ACCOUNT = '000000000000';
const credentials = { accessKeyId: 'offline', secretAccessKey: 'offline' };
const ROOT = resolve(__dirname, '..', '..');
const execFileAsync = promisify(execFile);

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** The stand-in's answer for a function error, as Lambda reports an unhandled one. */
const THROW = Symbol('throw');

/** A stand-in for the Lambda invoke endpoint: records each event and answers as `respond` says. */
async function startInvokeEndpoint(respond: (event: KinesisStreamEvent) => unknown) {
  const events: KinesisStreamEvent[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KinesisStreamEvent;
      events.push(event);
      const answer = respond(event);
      if (answer === THROW) {
        response
          .writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' })
          .end('{"errorType":"Error","errorMessage":"poison"}');
      } else {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer ?? null));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, events, server };
}

const dataOf = (event: KinesisStreamEvent) => event.Records.map((record) => Buffer.from(record.kinesis.data, 'base64').toString('utf8'));

describe('the offline Kinesis event source, on its own', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** The emulators with one stream and its on-failure queue, the event source feeding `respond`. */
  async function feed(streamName: string, respond: (event: KinesisStreamEvent) => unknown, settings: Partial<DeclaredKinesisEvent> = {}, shardCount = 1) {
    const [kinesisPort, sqsPort] = await freePorts(2);
    const kinesisEmulator = await startKinesisEmulator([{ logicalId: 'Stream', name: streamName, shardCount }], kinesisPort, region);
    cleanups.push(kinesisEmulator.close);
    const failedQueue = `${streamName}-failed`;
    const sqsServer = await createSqsServer({
      port: sqsPort,
      hostname: '127.0.0.1',
      accountId: ACCOUNT,
      region,
      emulateQueueCreationLifecycle: false,
      queues: [{ QueueName: failedQueue }],
    });
    cleanups.push(() => closeServer(sqsServer));
    const sqsEndpoint = `http://127.0.0.1:${sqsPort}`;
    const endpoint = await startInvokeEndpoint(respond);
    cleanups.push(() => closeServer(endpoint.server));
    const failedQueueUrl = `${sqsEndpoint}/${ACCOUNT}/${failedQueue}`;
    const source = await startKinesisEventSource(
      [
        {
          functionName: 'consumer',
          timeout: 5,
          streamName,
          streamArn: `arn:aws:kinesis:${region}:${ACCOUNT}:stream/${streamName}`,
          onFailureQueueUrl: failedQueueUrl,
          event: {
            stream: 'Stream',
            batchSize: 100,
            maximumBatchingWindow: 0,
            startingPosition: 'LATEST',
            reportBatchItemFailures: true,
            maximumRetryAttempts: 3,
            bisectBatchOnFunctionError: false,
            onFailureQueue: 'Failed',
            enabled: true,
            ...settings,
          },
        },
      ],
      { kinesisEndpoint: kinesisEmulator.endpoint, sqsEndpoint, lambdaEndpoint: endpoint.url, region, accountId: ACCOUNT, log: () => undefined },
    );
    cleanups.push(() => source.stop());
    const kinesis = offlineKinesisClient(kinesisEmulator.endpoint, region);
    cleanups.push(async () => kinesis.destroy());
    const sqs = new SQSClient({ endpoint: sqsEndpoint, region, credentials });
    cleanups.push(async () => sqs.destroy());
    return { kinesis, sqs, failedQueueUrl, events: endpoint.events };
  }

  const put = (kinesis: KinesisClient, streamName: string, texts: string[]) =>
    kinesis.send(new PutRecordsCommand({ StreamName: streamName, Records: texts.map((text) => ({ PartitionKey: 'one-shard', Data: Buffer.from(text) })) }));

  it('sends the records put after it started, in order, in the event Lambda sends', { timeout: 20_000 }, async () => {
    // Arrange
    const { kinesis, events } = await feed('clicks', () => ({}));

    // Act
    const { Records: written = [] } = await put(kinesis, 'clicks', ['{"n":1}', '{"n":2}', '{"n":3}']);

    // Assert
    await until('the invocation', 10_000, () => (events.length > 0 ? true : undefined));
    expect(events.map(dataOf)).toEqual([['{"n":1}', '{"n":2}', '{"n":3}']]);
    const [first] = events[0].Records;
    expect(first).toMatchObject({
      eventSource: 'aws:kinesis',
      eventName: 'aws:kinesis:record',
      eventVersion: '1.0',
      eventSourceARN: `arn:aws:kinesis:${region}:${ACCOUNT}:stream/clicks`,
      awsRegion: region,
      eventID: `${written[0].ShardId}:${written[0].SequenceNumber}`,
      invokeIdentityArn: `arn:aws:iam::${ACCOUNT}:role/consumer`,
      kinesis: { kinesisSchemaVersion: '1.0', partitionKey: 'one-shard', sequenceNumber: written[0].SequenceNumber },
    });
    expect(Math.abs(first.kinesis.approximateArrivalTimestamp * 1000 - Date.now())).toBeLessThan(10_000);
  });

  it('retries from the record the function reports failed: the records before it are not sent again', { timeout: 20_000 }, async () => {
    // Arrange: the function fails c the first time it sees it
    let failedOnce = false;
    const { kinesis, events } = await feed('orders', (event) => {
      const c = event.Records.find((record) => Buffer.from(record.kinesis.data, 'base64').toString('utf8') === 'c');
      if (!c || failedOnce) return { batchItemFailures: [] };
      failedOnce = true;
      return { batchItemFailures: [{ itemIdentifier: c.kinesis.sequenceNumber }] };
    });

    // Act
    await put(kinesis, 'orders', ['a', 'b', 'c', 'd']);

    // Assert: the shard checkpointed after b, and went on from c
    await until('the retry', 10_000, () => (events.length >= 2 ? true : undefined));
    await sleep(300);
    expect(events.map(dataOf)).toEqual([
      ['a', 'b', 'c', 'd'],
      ['c', 'd'],
    ]);
  });

  it('holds the shard back while a failing batch is retried, then describes it in the on-failure queue and goes on', { timeout: 20_000 }, async () => {
    // Arrange: one record per batch; the function throws on the poison record
    const { kinesis, sqs, failedQueueUrl, events } = await feed('payments', (event) => (dataOf(event).includes('poison') ? THROW : {}), {
      batchSize: 1,
      maximumRetryAttempts: 2,
    });

    // Act
    const { Records: written = [] } = await put(kinesis, 'payments', ['ok-1', 'poison', 'ok-2']);

    // Assert: the poison record three times (1 + 2 retries), ok-2 only after it was given up
    await until('ok-2', 10_000, () => (events.some((event) => dataOf(event).includes('ok-2')) ? true : undefined));
    expect(events.map(dataOf)).toEqual([['ok-1'], ['poison'], ['poison'], ['poison'], ['ok-2']]);
    const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: failedQueueUrl, MaxNumberOfMessages: 10 }));
    expect(Messages).toHaveLength(1);
    expect(JSON.parse(Messages[0].Body!)).toMatchObject({
      requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3, functionArn: `arn:aws:lambda:${region}:${ACCOUNT}:function:consumer` },
      responseContext: { functionError: 'Unhandled' },
      KinesisBatchInfo: {
        shardId: written[1].ShardId,
        startSequenceNumber: written[1].SequenceNumber,
        endSequenceNumber: written[1].SequenceNumber,
        batchSize: 1,
        streamArn: `arn:aws:kinesis:${region}:${ACCOUNT}:stream/payments`,
      },
    });
  });

  it('polls each shard on its own: a record retried without end holds back its shard only', { timeout: 20_000 }, async () => {
    // Arrange: two shards; the function always fails a-1, and retries are not bounded (Lambda's default)
    const { kinesis, events } = await feed('views', (event) => (dataOf(event).includes('a-1') ? THROW : {}), { maximumRetryAttempts: -1 }, 2);
    const toShard = (shard: 0 | 1, text: string) => ({
      PartitionKey: text,
      ExplicitHashKey: shard === 0 ? '0' : '340282366920938463463374607431768211455',
      Data: Buffer.from(text),
    });

    // Act
    await kinesis.send(new PutRecordsCommand({ StreamName: 'views', Records: [toShard(0, 'a-1'), toShard(1, 'b-1'), toShard(0, 'a-2'), toShard(1, 'b-2')] }));

    // Assert: shard 1's records go through in order while shard 0 keeps retrying a-1 with a-2 behind it
    await until('shard 1 served and shard 0 retried', 10_000, () =>
      events.some((event) => dataOf(event).includes('b-2')) && events.filter((event) => dataOf(event).includes('a-1')).length >= 3 ? true : undefined,
    );
    expect(events.map(dataOf).filter((data) => data[0].startsWith('b-'))).toEqual([['b-1', 'b-2']]);
    expect(
      new Set(
        events
          .map(dataOf)
          .filter((data) => data[0].startsWith('a-'))
          .map((data) => data.join(',')),
      ),
    ).toEqual(new Set(['a-1,a-2']));
    expect(new Set(events.flatMap((event) => event.Records.map((record) => record.eventID.split(':')[0]))).size).toBe(2);
  });
});

// A Kinesis consumer as `npm run new -- kinesis` writes it, in a copy of the project (the example pipeline has no
// stream), run by the whole offline stack: a producer here puts records with the kit's forwarder, serverless offline
// runs the consumer, and its spans reach the stack's OTLP receiver.
describe('the offline Kinesis event source, with a generated consumer in serverless offline', () => {
  const CONSUMER = 'kinesis-offline-consumer';
  let copy: string;
  let stack: OfflineStack;
  let kinesis: KinesisClient;
  let sqs: SQSClient;
  let capture: SpanCapture;
  let streamName: string;
  let failedQueueUrl: string;

  beforeAll(async () => {
    copy = await mkdtemp(join(tmpdir(), 'traced-kinesis-offline-'));
    for (const entry of ['serverless.yml', 'package.json', 'tsconfig.json', 'functions', 'lib', 'scripts', 'extension', 'collector']) {
      await cp(join(ROOT, entry), join(copy, entry), { recursive: true });
    }
    await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    await execFileAsync(join(ROOT, 'node_modules', '.bin', 'tsx'), ['scripts/new.ts', 'kinesis', CONSUMER], { cwd: copy, timeout: 60_000 });
    // The generated handler, with two ways to fail on demand: once (a marker file says it has), or always.
    await writeFile(
      join(copy, 'functions', `${CONSUMER}.ts`),
      `import type { KinesisStreamRecord } from 'aws-lambda';
import { existsSync, writeFileSync } from 'node:fs';
import { traceKinesisRecords } from '../lib';

export async function consume(record: KinesisStreamRecord): Promise<void> {
  const data = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8')) as { failOnceMarker?: string; poison?: boolean };
  if (data.poison) throw new Error('a poison record');
  if (data.failOnceMarker && !existsSync(data.failOnceMarker)) {
    writeFileSync(data.failOnceMarker, '');
    throw new Error('failing once');
  }
}

export const handler = traceKinesisRecords(consume);
`,
    );
    // The copy's own stack: it reads the copy's serverless.yml and runs serverless offline there.
    const copied = (await import(join(copy, 'scripts', 'offline', 'stack.ts'))) as typeof import('../../scripts/offline/stack');
    const [http, lambda, sqsPort, kinesisPort, otlp] = await freePorts(5);
    stack = await copied.startOfflineStack({ ports: { http, lambda, sqs: sqsPort, kinesis: kinesisPort, otlp } });
    const service = copied.offlineService();
    const [mapping] = service.functions.find((fn) => fn.key === CONSUMER)!.kinesisEvents;
    streamName = service.stream(mapping.stream).name;
    failedQueueUrl = stack.queueUrls[service.queue(mapping.onFailureQueue!).name];
    // The client a function that writes to the stream makes offline (functions/config.ts).
    kinesis = new KinesisClient({ region: service.region, ...kinesisClientOptions(stack.kinesisEndpoint) });
    sqs = new SQSClient({ endpoint: stack.sqsEndpoint, region: service.region, credentials });
    capture = captureSpans();
  }, 180_000);

  afterAll(async () => {
    kinesis?.destroy();
    sqs?.destroy();
    await stack?.stop();
    if (copy) await rm(copy, { recursive: true, force: true });
  }, 30_000);

  const processSpans = (traceId: string) => stack.receiver!.spans().filter((span) => span.traceId === traceId && span.name === `process ${streamName}`);

  /** Puts the records in one PutRecords call inside a `produce` span; the `create` span id of each, and the trace id. */
  async function produce(records: unknown[]): Promise<{ traceId: string; createSpanIds: string[] }> {
    capture.reset();
    await withSpan('produce', () =>
      putRecords(kinesis, {
        StreamName: streamName,
        Records: records.map((record) => ({ PartitionKey: 'one-shard', Data: Buffer.from(JSON.stringify(record)) })),
      }),
    );
    const created = capture.spans().filter((span) => span.name === `create ${streamName}`);
    return { traceId: created[0].spanContext().traceId, createSpanIds: created.map((span) => span.spanContext().spanId) };
  }

  it("continues each record's producer span in the consumer, one CONSUMER span per record", { timeout: 60_000 }, async () => {
    // Act
    const { traceId, createSpanIds } = await produce([{ id: 't-1' }, { id: 't-2' }, { id: 't-3' }]);

    // Assert
    const spans = await until('the three consumer spans', 45_000, () => {
      const found = processSpans(traceId);
      return found.length >= 3 ? found : undefined;
    });
    expect(spans.map((span) => span.parentSpanId).sort()).toEqual([...createSpanIds].sort());
    expect(spans.every((span) => span.kind === 'CONSUMER' && span.status !== 'ERROR')).toBe(true);
    expect(spans[0].attributes['traced_lambda.parent.source']).toBe('kinesis-record-data');
    const [seconds, nanos] = capture.spans().find((span) => span.name === 'produce')!.endTime;
    const putEndNs = BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
    // No batching window: each record is read within a poll pause (100 ms) and invoked at once (~340 ms measured here,
    // the first invocation included), not after seconds.
    for (const span of spans) expect(Number(span.startNs - putEndNs) / 1e6).toBeLessThan(5000);
  });

  it('retries the batch from the record that failed: the records before it are not run again', { timeout: 60_000 }, async () => {
    // Arrange: the second record fails the first time it runs
    const marker = join(copy, `failed-once-${Date.now()}`);

    // Act
    const { traceId, createSpanIds } = await produce([{ id: 'p-1' }, { id: 'p-2', failOnceMarker: marker }, { id: 'p-3' }]);

    // Assert: p-1 once; p-2 twice, failed then done; p-3 once, with p-2's retry
    const spans = await until('the retry', 45_000, () => {
      const found = processSpans(traceId);
      return found.length >= 4 ? found : undefined;
    });
    await sleep(1000);
    const runs = (index: number) =>
      processSpans(traceId)
        .filter((span) => span.parentSpanId === createSpanIds[index])
        .sort((a, b) => Number(a.startNs - b.startNs));
    expect([0, 1, 2].map((index) => runs(index).map((span) => span.status))).toEqual([['UNSET'], ['ERROR', 'UNSET'], ['UNSET']]);
    const invocation = (span: ReceivedSpan) => span.attributes['faas.invocation_id'];
    expect(invocation(runs(0)[0])).toBe(invocation(runs(1)[0]));
    expect(invocation(runs(1)[1])).toBe(invocation(runs(2)[0]));
    expect(invocation(runs(1)[1])).not.toBe(invocation(runs(1)[0]));
    expect(spans.length).toBe(4);
  });

  it('sends a record that keeps failing to the on-failure queue after maximumRetryAttempts, and goes on', { timeout: 90_000 }, async () => {
    // Act: a poison record
    const poison = await produce([{ id: 'poison', poison: true }]);

    // Assert: 1 + 3 attempts, each an ERROR span, then the batch's description in the failed-records queue
    const message = await until('the on-failure record', 60_000, async () => {
      const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: failedQueueUrl, MaxNumberOfMessages: 1 }));
      return Messages[0];
    });
    expect(JSON.parse(message.Body!)).toMatchObject({
      requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 4 },
      KinesisBatchInfo: { batchSize: 1, streamArn: expect.stringContaining(`:stream/${streamName}`) },
    });
    const attempts = await until('the four attempts exported', 15_000, () => {
      const found = processSpans(poison.traceId);
      return found.length >= 4 ? found : undefined;
    });
    expect(attempts.map((span) => span.status)).toEqual(['ERROR', 'ERROR', 'ERROR', 'ERROR']);

    // And the shard goes on: a record put after it is run
    const next = await produce([{ id: 'after-poison' }]);
    await until('the next record run', 30_000, () => (processSpans(next.traceId).length === 1 ? true : undefined));
  });
});
