/**
 * The offline stand-in for Lambda's SQS event source mapping: for each consumer's `sqs` event in serverless.yml,
 * polls its queue on the emulator, assembles batches as Lambda does (batch size, batching window), invokes the
 * function through serverless offline's Lambda invoke endpoint (so the handler runs there, as every other
 * invocation does) and deletes only what Lambda would delete. What it leaves in flight comes back after the
 * queue's visibility timeout, and the emulator moves it to the dead-letter queue after the redrive policy's
 * `maxReceiveCount` receives, as SQS does.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs';
import { setTimeout as sleep } from 'node:timers/promises';
import { invokeFunction } from './invoke-function';
import { batchIsReady, nextReceiveCount, settleBatch, toLambdaRecord } from './sqs-batch-policy';
import type { DeclaredSqsEvent } from './service';

/** One function's `sqs` event, with the names it needs on the emulator and serverless offline. */
export interface SqsMapping {
  functionName: string;
  /** The function's timeout (s): an invocation that outlives it by far is given up as failed. */
  timeout: number;
  queueName: string;
  queueUrl: string;
  queueArn: string;
  event: DeclaredSqsEvent;
}

export interface SqsEventSourceOptions {
  sqsEndpoint: string;
  lambdaEndpoint: string;
  region: string;
  /** Where each batch's outcome is told (the stack's output). */
  log: (line: string) => void;
}

export interface SqsEventSource {
  stop(): Promise<void>;
}

// Between empty polls of an idle queue (each empty poll of the emulator also takes ~40 ms).
const IDLE_PAUSE_MS = 60;
// Lambda starts with five concurrent batches per standard queue; a FIFO queue's batches go one at a time here,
// which keeps every message group in order.
const STANDARD_CONCURRENT_BATCHES = 5;

const credentials = { accessKeyId: 'offline', secretAccessKey: 'offline' };

export function startSqsEventSource(mappings: SqsMapping[], options: SqsEventSourceOptions): SqsEventSource {
  const sqs = new SQSClient({ endpoint: options.sqsEndpoint, region: options.region, credentials });
  const lambda = new LambdaClient({ endpoint: options.lambdaEndpoint, region: options.region, credentials, maxAttempts: 1 });
  const stopping = new AbortController();
  const pollers = mappings.filter((mapping) => mapping.event.enabled).map((mapping) => poll(mapping, sqs, lambda, options, stopping.signal));
  return {
    async stop() {
      stopping.abort();
      await Promise.allSettled(pollers);
      sqs.destroy();
      lambda.destroy();
    },
  };
}

async function poll(mapping: SqsMapping, sqs: SQSClient, lambda: LambdaClient, options: SqsEventSourceOptions, signal: AbortSignal): Promise<void> {
  const fifo = mapping.queueName.endsWith('.fifo');
  const inFlight = new Set<Promise<void>>();
  const limit = fifo ? 1 : STANDARD_CONCURRENT_BATCHES;
  while (!signal.aborted) {
    try {
      const batch = await assembleBatch(mapping, sqs, signal);
      if (batch.length === 0) continue;
      const running: Promise<void> = runBatch(mapping, batch, sqs, lambda, options, fifo, signal)
        // A batch whose deletion failed is received again after its visibility timeout, as on Lambda.
        .catch((error: Error) => {
          if (!signal.aborted) options.log(`SQS ${mapping.queueName}: a batch could not be settled (${error.message})`);
        })
        .finally(() => inFlight.delete(running));
      inFlight.add(running);
      if (inFlight.size >= limit) await Promise.race(inFlight);
    } catch (error) {
      if (signal.aborted) break;
      options.log(`SQS ${mapping.queueName}: polling failed (${(error as Error).message}); trying again`);
      await sleep(500, undefined, { signal }).catch(() => undefined);
    }
  }
  await Promise.allSettled(inFlight);
}

/** Receives until the batch is full or its window has elapsed; empty only when stopping. */
async function assembleBatch(mapping: SqsMapping, sqs: SQSClient, signal: AbortSignal): Promise<Message[]> {
  const settings = { batchSize: mapping.event.batchSize, windowMs: mapping.event.maximumBatchingWindow * 1000 };
  const batch: Message[] = [];
  let firstAt: number | undefined;
  while (!signal.aborted) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: mapping.queueUrl,
        MaxNumberOfMessages: nextReceiveCount(batch.length, settings.batchSize),
        WaitTimeSeconds: 0,
        AttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: signal },
    );
    if (Messages.length > 0 && firstAt === undefined) firstAt = Date.now();
    for (const message of Messages) {
      // A message whose visibility timeout ended while the batch gathered comes again: its newest receipt counts.
      const earlier = batch.findIndex((held) => held.MessageId === message.MessageId);
      if (earlier >= 0) batch.splice(earlier, 1);
      batch.push(message);
    }
    if (batchIsReady(batch.length, firstAt, Date.now(), settings)) return batch;
    if (Messages.length === 0) {
      const windowLeft = firstAt === undefined ? IDLE_PAUSE_MS : firstAt + settings.windowMs - Date.now();
      await sleep(Math.max(0, Math.min(IDLE_PAUSE_MS, windowLeft)), undefined, { signal }).catch(() => undefined);
    }
  }
  return [];
}

async function runBatch(
  mapping: SqsMapping,
  messages: Message[],
  sqs: SQSClient,
  lambda: LambdaClient,
  options: SqsEventSourceOptions,
  fifo: boolean,
  signal: AbortSignal,
): Promise<void> {
  const records = messages.map((message) => toLambdaRecord(message, mapping.queueArn, options.region));
  const result = await invokeFunction(lambda, mapping.functionName, mapping.timeout, { Records: records });
  const settlement = settleBatch(records, result, { reportBatchItemFailures: mapping.event.reportBatchItemFailures, fifo });
  const handles = new Map(messages.map((message) => [message.MessageId, message.ReceiptHandle]));
  for (let start = 0; start < settlement.done.length; start += 10) {
    const entries = settlement.done.slice(start, start + 10).map((id, index) => ({ Id: String(index), ReceiptHandle: handles.get(id) }));
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: mapping.queueUrl, Entries: entries }), { abortSignal: signal });
  }
  if (settlement.retried.length > 0) {
    const receives = records.filter((record) => settlement.retried.includes(record.messageId)).map((record) => record.attributes.ApproximateReceiveCount);
    options.log(
      `SQS ${mapping.queueName} → ${mapping.functionName}: ${settlement.retried.length} of ${records.length} record(s) back to the queue ` +
        `after their visibility timeout (receive ${[...new Set(receives)].join(', ')})${settlement.reason ? `: ${settlement.reason}` : ''}`,
    );
  }
}
