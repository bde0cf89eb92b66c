import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { putItem } from '../../lib';
import { captureSpans, dynamoDbStreamEvent, dynamoDbStreamRecord } from '../../lib/testing';
import { startOtlpReceiver, type OtlpReceiver } from '../../scripts/offline/otlp-receiver';
import { runtimeClientProblem, startPackagedFunction, type PackagedFunction } from './lambda-runtime';
import { packageFixture } from './packaged-fixture';

// DynamoDB Streams offline: no emulator from the registry has streams (dynalite has none), so the hop runs here end to
// end instead. The producer writes items with the kit's `putItem` through the real DynamoDB client, to a local
// endpoint that keeps each PutItem request as the SDK serialized it; the stream records Lambda would deliver are built
// from those items; a packaged consumer (traceDynamoDbStreamRecords) runs them under AWS's runtime interface client,
// and its spans are read back from an OTLP receiver.

let work: string;
let receiver: OtlpReceiver;
let dynamoDbEndpoint: Server;
let fn: PackagedFunction | undefined;
const written: { target: string; body: { TableName: string; Item: Record<string, AttributeValue> } }[] = [];

beforeAll(async () => {
  const problem = runtimeClientProblem();
  if (problem) throw new Error(problem);
  work = await mkdtemp(join(tmpdir(), 'traced-dynamodb-stream-'));
  await packageFixture(join(__dirname, 'fixtures', 'dynamodb-consumer.ts'), work);
  await mkdir(join(work, 'runtime'), { recursive: true });
  receiver = await startOtlpReceiver(0);
  dynamoDbEndpoint = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      written.push({ target: String(request.headers['x-amz-target']), body: JSON.parse(body) });
      response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end('{}');
    });
  });
  await new Promise<void>((listening) => dynamoDbEndpoint.listen(0, '127.0.0.1', listening));
}, 60_000);

afterAll(async () => {
  await fn?.stop();
  await receiver?.close();
  await new Promise((closed) => dynamoDbEndpoint?.close(closed));
  if (work) await rm(work, { recursive: true, force: true });
});

it('continues each written item’s trace in the stream consumer under the runtime client, and reports the first failure by sequence number', async () => {
  // The producer: four writes, each in a trace of its own (no span is active around them).
  const producer = captureSpans();
  const client = new DynamoDBClient({
    region: 'eu-west-1',
    endpoint: `http://127.0.0.1:${(dynamoDbEndpoint.address() as AddressInfo).port}`,
    credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
  });
  for (const orderId of ['o-0', 'o-1', 'o-unshippable', 'o-3']) {
    await putItem(client, { TableName: 'orders', Item: { pk: { S: orderId }, total: { N: '42' } } });
  }
  client.destroy();
  const puts = producer.spans().filter((span) => span.name === 'PutItem orders');
  expect(puts).toHaveLength(4);
  expect(written.map(({ target }) => target)).toEqual(Array(4).fill('DynamoDB_20120810.PutItem'));
  const items = written.map(({ body }) => body.Item);
  expect(items.every((item) => 'traced_lambda_trace' in item)).toBe(true);

  // The stream: o-0 deleted since (its last write's image as OldImage), then the other three inserted.
  const records = [
    dynamoDbStreamRecord({ eventName: 'REMOVE', oldImage: items[0], sequenceNumber: '100' }),
    dynamoDbStreamRecord({ eventName: 'INSERT', newImage: items[1], sequenceNumber: '200' }),
    dynamoDbStreamRecord({ eventName: 'INSERT', newImage: items[2], sequenceNumber: '300' }),
    dynamoDbStreamRecord({ eventName: 'INSERT', newImage: items[3], sequenceNumber: '400' }),
  ];
  fn = await startPackagedFunction({
    name: 'dynamodb-consumer',
    taskRoot: work,
    handler: 'functions/dynamodb-consumer.handler',
    nodePath: join(work, 'runtime'),
    environment: {
      NODE_OPTIONS: '--enable-source-maps --import ./extension/after-response.mjs',
      OTEL_SERVICE_NAME: 'dynamodb-consumer',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    },
  });

  const result = await fn.invoke(dynamoDbStreamEvent(records));

  // The first failure ends the batch: its sequence number is reported, and the record after it is left for Lambda to
  // deliver again (not run).
  expect(result).toMatchObject({ ok: true, payload: { batchItemFailures: [{ itemIdentifier: '300' }] } });
  const handled = fn
    .logs()
    .split('\n')
    .filter((line) => line.includes('"handled"'))
    .map((line) => JSON.parse(line.slice(line.indexOf('{'))));
  expect(handled).toEqual([
    { handled: 'o-0', eventName: 'REMOVE', attributes: ['pk', 'total'] },
    { handled: 'o-1', eventName: 'INSERT', attributes: ['pk', 'total'] },
    { handled: 'o-unshippable', eventName: 'INSERT', attributes: ['pk', 'total'] },
  ]);

  // One CONSUMER span per record run, each the child of the write that produced its image.
  const spans = await receiver.waitFor((received) => received.filter((span) => span.name === 'process orders').length >= 3, 5_000);
  const consumed = spans.filter((span) => span.name === 'process orders');
  expect(consumed).toHaveLength(3);
  for (const [index, put] of puts.slice(0, 3).entries()) {
    const span = consumed.find((candidate) => candidate.traceId === put.spanContext().traceId);
    expect(span, `the span of ${['o-0', 'o-1', 'o-unshippable'][index]}`).toMatchObject({ kind: 'CONSUMER', parentSpanId: put.spanContext().spanId });
  }
  const failed = consumed.find((span) => span.traceId === puts[2].spanContext().traceId);
  expect(failed).toMatchObject({ status: 'ERROR', statusMessage: 'cannot ship o-unshippable' });
  expect(consumed.some((span) => span.traceId === puts[3].spanContext().traceId)).toBe(false);
}, 60_000);
