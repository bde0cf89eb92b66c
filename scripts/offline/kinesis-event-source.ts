/**
 * The offline stand-in for Lambda's Kinesis event source mapping: for each consumer's `stream` event on a Kinesis
 * stream in serverless.yml, one poller per shard of the stream on the emulator reads the shard in order, assembles
 * batches as Lambda does (batch size, batching window), invokes the function through serverless offline's Lambda
 * invoke endpoint and moves on only past what Lambda would checkpoint: a failure holds the shard back while its
 * batch is retried (from the reported record with `ReportBatchItemFailures`), and a batch given up after
 * `maximumRetryAttempts` is described in the on-failure queue on the SQS emulator.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html
 */
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type KinesisClient,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { KinesisStreamRecord } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { invokeFunction } from './invoke-function';
import { failureRecord, freshShard, settleShardBatch, toKinesisLambdaRecord, type ShardSource, type ShardState } from './kinesis-batch-policy';
import { offlineKinesisClient } from './kinesis-emulator';
import type { DeclaredKinesisEvent } from './service';
import { batchIsReady } from './sqs-batch-policy';

/** One function's `stream` event, with the names it needs on the emulators and serverless offline. */
export interface KinesisMapping {
  functionName: string;
  /** The function's timeout (s): an invocation that outlives it by far is given up as failed. */
  timeout: number;
  streamName: string;
  streamArn: string;
  /** The on-failure queue's URL on the SQS emulator, when the event declares one. */
  onFailureQueueUrl?: string;
  event: DeclaredKinesisEvent;
}

export interface KinesisEventSourceOptions {
  kinesisEndpoint: string;
  sqsEndpoint: string;
  lambdaEndpoint: string;
  region: string;
  accountId: string;
  /** Where each retry and each batch given up is told (the stack's output). */
  log: (line: string) => void;
}

export interface KinesisEventSource {
  stop(): Promise<void>;
}

// Between reads of a shard that had nothing new (Lambda reads each shard about once a second; offline sooner).
const IDLE_PAUSE_MS = 100;
// Before a failed batch is invoked again, so that a record retried without end does not spin.
const RETRY_PAUSE_MS = 100;
// The most records one GetRecords call returns.
const GET_RECORDS_MAX = 10_000;

const credentials = { accessKeyId: 'offline', secretAccessKey: 'offline' };

/**
 * Starts a poller on every shard of every enabled mapping; resolves once each holds its shard iterator, so that a
 * record put after this (with `startingPosition: LATEST`) reaches the function.
 */
export async function startKinesisEventSource(mappings: KinesisMapping[], options: KinesisEventSourceOptions): Promise<KinesisEventSource> {
  const kinesis = offlineKinesisClient(options.kinesisEndpoint, options.region);
  const sqs = new SQSClient({ endpoint: options.sqsEndpoint, region: options.region, credentials });
  const lambda = new LambdaClient({ endpoint: options.lambdaEndpoint, region: options.region, credentials, maxAttempts: 1 });
  const stopping = new AbortController();
  const clients = { kinesis, sqs, lambda };
  const pollers: Promise<void>[] = [];
  const stop = async () => {
    stopping.abort();
    await Promise.allSettled(pollers);
    kinesis.destroy();
    sqs.destroy();
    lambda.destroy();
  };
  try {
    for (const mapping of mappings.filter((candidate) => candidate.event.enabled)) {
      const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName: mapping.streamName }));
      for (const shard of Shards) {
        const shardId = shard.ShardId!;
        const iterator = await firstIterator(kinesis, mapping, shardId, options.log);
        pollers.push(pollShard(mapping, shardId, iterator, clients, options, stopping.signal));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}

async function firstIterator(kinesis: KinesisClient, mapping: KinesisMapping, shardId: string, log: (line: string) => void): Promise<string> {
  let type = mapping.event.startingPosition as ShardIteratorType;
  if (type !== 'LATEST' && type !== 'TRIM_HORIZON') {
    log(`Kinesis ${mapping.streamName}: startingPosition ${type} is read from the shard's start offline (TRIM_HORIZON)`);
    type = 'TRIM_HORIZON';
  }
  const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({ StreamName: mapping.streamName, ShardId: shardId, ShardIteratorType: type }));
  return ShardIterator!;
}

interface Clients {
  kinesis: KinesisClient;
  sqs: SQSClient;
  lambda: LambdaClient;
}

/** Reads one shard in order and feeds its records to the function, one batch at a time, until stopped. */
async function pollShard(
  mapping: KinesisMapping,
  shardId: string,
  firstShardIterator: string,
  clients: Clients,
  options: KinesisEventSourceOptions,
  signal: AbortSignal,
): Promise<void> {
  const { event } = mapping;
  const source: ShardSource = {
    shardId,
    streamArn: mapping.streamArn,
    region: options.region,
    invokeIdentityArn: `arn:aws:iam::${options.accountId}:role/${mapping.functionName}`,
  };
  const label = `Kinesis ${mapping.streamName}/${shardId} → ${mapping.functionName}`;
  let iterator: string | undefined = firstShardIterator;
  let lastRead: string | undefined;
  // Records read and not yet done, in shard order; the batch is taken from their head.
  const pending: KinesisStreamRecord[] = [];
  let firstAt: number | undefined;
  let state: ShardState = freshShard(event.batchSize);
  const windowMs = event.maximumBatchingWindow * 1000;

  while (!signal.aborted) {
    try {
      let readNothing = true;
      if (iterator !== undefined && pending.length < event.batchSize) {
        const limit = Math.min(GET_RECORDS_MAX, event.batchSize - pending.length);
        const read = await readShard(clients.kinesis, mapping, shardId, iterator, lastRead, limit, signal);
        iterator = read.next;
        for (const record of read.records) {
          pending.push(toKinesisLambdaRecord(record, source));
          lastRead = record.SequenceNumber;
        }
        readNothing = read.records.length === 0;
        if (!readNothing && firstAt === undefined) firstAt = Date.now();
      }
      if (!batchIsReady(Math.min(pending.length, state.limit), firstAt, Date.now(), { batchSize: state.limit, windowMs })) {
        if (iterator === undefined && pending.length === 0) return; // a closed shard, read to its end
        if (readNothing) {
          const windowLeft = firstAt === undefined ? IDLE_PAUSE_MS : firstAt + windowMs - Date.now();
          await sleep(Math.max(0, Math.min(IDLE_PAUSE_MS, windowLeft)), undefined, { signal }).catch(() => undefined);
        }
        continue;
      }

      const batch = pending.slice(0, state.limit);
      const invocations = state.failures + 1;
      const result = await invokeFunction(clients.lambda, mapping.functionName, mapping.timeout, { Records: batch });
      const step = settleShardBatch(batch, result, state, event);
      if (step.discarded.length > 0) {
        await describeDiscarded(step.discarded, source, mapping, clients.sqs, options, {
          requestId: randomUUID(),
          functionArn: `arn:aws:lambda:${options.region}:${options.accountId}:function:${mapping.functionName}`,
          approximateInvokeCount: invocations,
          functionError: result.functionError === undefined ? undefined : 'Unhandled',
          now: new Date(),
        });
      }
      pending.splice(0, step.done);
      if (pending.length === 0) firstAt = undefined;
      state = step.next;
      if (step.reason && step.discarded.length === 0) {
        options.log(`${label}: retrying ${batch.length - step.done} record(s) from ${pending[0]?.kinesis.sequenceNumber} (${step.reason})`);
        await sleep(RETRY_PAUSE_MS, undefined, { signal }).catch(() => undefined);
      }
    } catch (error) {
      if (signal.aborted) break;
      options.log(`${label}: polling failed (${(error as Error).message}); trying again`);
      await sleep(500, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** One GetRecords call; an iterator that expired (5 min unused, while a batch was retried) is taken again after the last record read. */
async function readShard(
  kinesis: KinesisClient,
  mapping: KinesisMapping,
  shardId: string,
  iterator: string,
  lastRead: string | undefined,
  limit: number,
  signal: AbortSignal,
) {
  try {
    const output = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }), { abortSignal: signal });
    return { records: output.Records ?? [], next: output.NextShardIterator };
  } catch (error) {
    if (!(error instanceof ExpiredIteratorException)) throw error;
    const { ShardIterator } = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: mapping.streamName,
        ShardId: shardId,
        ...(lastRead === undefined ? { ShardIteratorType: 'LATEST' } : { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: lastRead }),
      }),
      { abortSignal: signal },
    );
    return { records: [], next: ShardIterator };
  }
}

/** Sends the description of a batch given up to the on-failure queue (or only says it, when there is none). */
async function describeDiscarded(
  discarded: KinesisStreamRecord[],
  source: ShardSource,
  mapping: KinesisMapping,
  sqs: SQSClient,
  options: KinesisEventSourceOptions,
  context: Parameters<typeof failureRecord>[2],
): Promise<void> {
  const range = `${discarded[0].kinesis.sequenceNumber}…${discarded[discarded.length - 1].kinesis.sequenceNumber}`;
  const label = `Kinesis ${mapping.streamName}/${source.shardId} → ${mapping.functionName}`;
  if (!mapping.onFailureQueueUrl) {
    options.log(`${label}: ${discarded.length} record(s) given up after ${context.approximateInvokeCount} invocation(s), no on-failure destination (${range})`);
    return;
  }
  const body = JSON.stringify(failureRecord(discarded, source, context));
  try {
    await sqs.send(new SendMessageCommand({ QueueUrl: mapping.onFailureQueueUrl, MessageBody: body }));
    options.log(
      `${label}: ${discarded.length} record(s) given up after ${context.approximateInvokeCount} invocation(s), described in the on-failure queue (${range})`,
    );
  } catch (error) {
    options.log(`${label}: ${discarded.length} record(s) given up; their description could not be sent (${(error as Error).message})`);
  }
}
