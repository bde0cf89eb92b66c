/**
 * The decisions of Lambda's Kinesis event source mapping that need no stream and no function, kept apart so that
 * they can be tested alone: what Lambda sends for a record read from a shard, where the shard goes on after an
 * invocation (on past the batch, retrying from a record, or giving the batch up), and the description of a batch
 * given up that goes to the on-failure destination.
 *
 * References (AWS Lambda Developer Guide):
 * - https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html (the event shape, polling per shard)
 * - https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html (defaults)
 * - https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html (partial batch responses)
 * - https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html (retries, bisect, on-failure)
 */
import type { _Record as KinesisDataRecord } from '@aws-sdk/client-kinesis';
import type { KinesisStreamRecord } from 'aws-lambda';
import type { InvocationResult } from './sqs-batch-policy';

/** Where a shard's records come from, as each record names it. */
export interface ShardSource {
  shardId: string;
  streamArn: string;
  region: string;
  /** The role Lambda reads the stream with (the function's execution role). */
  invokeIdentityArn: string;
}

/** The record Lambda puts in `event.Records` for a record read from a shard (with-kinesis: "Example event"). */
export function toKinesisLambdaRecord(record: KinesisDataRecord, source: ShardSource): KinesisStreamRecord {
  const sequenceNumber = record.SequenceNumber ?? '';
  const arrival = record.ApproximateArrivalTimestamp instanceof Date ? record.ApproximateArrivalTimestamp.getTime() : Date.now();
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: record.PartitionKey ?? '',
      sequenceNumber,
      data: Buffer.from(record.Data ?? new Uint8Array()).toString('base64'),
      // Seconds since the epoch, with the milliseconds as a fraction, as Lambda writes it.
      approximateArrivalTimestamp: arrival / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${source.shardId}:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: source.invokeIdentityArn,
    awsRegion: source.region,
    eventSourceARN: source.streamArn,
  };
}

/** A mapping's error handling, as serverless.yml declares it. */
export interface KinesisErrorHandling {
  reportBatchItemFailures: boolean;
  /** -1: retry until the records expire (never, offline). */
  maximumRetryAttempts: number;
  bisectBatchOnFunctionError: boolean;
}

/** What the shard's poller keeps between invocations. */
export interface ShardState {
  /** Failed invocations whose batch began at the record the shard is now at (0 once the shard moves past it). */
  failures: number;
  /** The most records the next batch may hold: the batch size, or less while a bisected batch is retried. */
  limit: number;
}

export interface ShardStep {
  /** How many records at the head of the batch are done: the shard moves on past them. */
  done: number;
  /** The records given up after the retries (the rest of the batch): described to the on-failure destination. */
  discarded: KinesisStreamRecord[];
  next: ShardState;
  /** Why the shard retries or gives up, when it does. */
  reason?: string;
}

/** The state of a shard before its first batch. */
export const freshShard = (batchSize: number): ShardState => ({ failures: 0, limit: batchSize });

/**
 * Where the shard goes on after an invocation of `batch` (services-kinesis-batchfailurereporting,
 * kinesis-on-failure-destination):
 * - without `ReportBatchItemFailures` any response is a success; a thrown error or a timeout fails the whole batch;
 * - with it, a null or empty response or `batchItemFailures` is a success; a reported `itemIdentifier` that is empty,
 *   null, missing or no sequence number of the batch fails the whole batch; otherwise the shard checkpoints before
 *   the lowest reported sequence number and retries from it (the records before it are done);
 * - `bisectBatchOnFunctionError`: a whole batch that failed is split in two, the first half tried next; the split
 *   uses no retry;
 * - a failure counts as a retry of the record the batch began at; once a batch beginning at the same record has
 *   failed `maximumRetryAttempts` + 1 times, it is given up whole (described to the on-failure destination) and the
 *   shard goes on past it. Offline, the count starts over when the shard moves (a partial success), which is the
 *   reading of "retries the batch" the AWS guide leaves open.
 */
export function settleShardBatch(
  batch: KinesisStreamRecord[],
  result: InvocationResult,
  state: ShardState,
  settings: KinesisErrorHandling & { batchSize: number },
): ShardStep {
  const succeeded: ShardStep = { done: batch.length, discarded: [], next: freshShard(settings.batchSize) };
  let from = 0;
  let reason: string;
  if (result.functionError) {
    reason = `the function failed (${result.functionError})`;
    if (settings.bisectBatchOnFunctionError && batch.length > 1) {
      return { done: 0, discarded: [], next: { failures: state.failures, limit: Math.ceil(batch.length / 2) }, reason: `${reason}; bisected` };
    }
  } else {
    if (!settings.reportBatchItemFailures) return succeeded;
    const reported = lowestReportedIndex(result.payload, batch);
    if (reported === undefined) return succeeded;
    if (typeof reported === 'string') reason = reported;
    else {
      from = reported;
      reason = `sequence number ${batch[from].kinesis.sequenceNumber} reported failed`;
    }
  }
  const failures = from === 0 ? state.failures + 1 : 1;
  const exhausted = settings.maximumRetryAttempts >= 0 && failures > settings.maximumRetryAttempts;
  if (exhausted) {
    return { done: batch.length, discarded: batch.slice(from), next: freshShard(settings.batchSize), reason: `${reason}; retries exhausted` };
  }
  return { done: from, discarded: [], next: { failures, limit: from === 0 ? state.limit : settings.batchSize }, reason };
}

/** The index of the lowest reported sequence number, undefined for none, or why the response fails the whole batch. */
function lowestReportedIndex(payload: unknown, batch: KinesisStreamRecord[]): number | string | undefined {
  const failures = typeof payload === 'object' && payload !== null ? (payload as { batchItemFailures?: unknown }).batchItemFailures : undefined;
  if (failures === undefined || failures === null) return undefined;
  if (!Array.isArray(failures)) return 'batchItemFailures is not a list';
  let lowest: number | undefined;
  for (const failure of failures) {
    const id: unknown = typeof failure === 'object' && failure !== null ? (failure as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    if (typeof id !== 'string' || id === '') return `an itemIdentifier is ${JSON.stringify(id ?? null)}`;
    const index = batch.findIndex((record) => record.kinesis.sequenceNumber === id);
    if (index < 0) return `itemIdentifier ${JSON.stringify(id)} is no sequence number of the batch`;
    // A shard's records are in sequence order: the lowest sequence number is the earliest record.
    lowest = lowest === undefined ? index : Math.min(lowest, index);
  }
  return lowest;
}

/** What went wrong with the batch given up, as the on-failure record's context says it. */
export interface FailureContext {
  functionArn: string;
  requestId: string;
  /** Invocations of the batch, the first included. */
  approximateInvokeCount: number;
  /** The function's error type when it failed (`Unhandled`), none when it reported failures. */
  functionError?: string;
  now: Date;
}

/**
 * The JSON document Lambda sends to the on-failure destination for a Kinesis batch it gives up: the invocation's
 * context and the batch's place in the shard, not the records (kinesis-on-failure-destination: "Example invocation
 * record").
 */
export function failureRecord(discarded: KinesisStreamRecord[], source: ShardSource, context: FailureContext): Record<string, unknown> {
  const first = discarded[0];
  const last = discarded[discarded.length - 1];
  const arrival = (record: KinesisStreamRecord | undefined) => new Date((record?.kinesis.approximateArrivalTimestamp ?? 0) * 1000).toISOString();
  return {
    requestContext: {
      requestId: context.requestId,
      functionArn: context.functionArn,
      condition: 'RetryAttemptsExhausted',
      approximateInvokeCount: context.approximateInvokeCount,
    },
    responseContext: { statusCode: 200, executedVersion: '$LATEST', ...(context.functionError ? { functionError: context.functionError } : {}) },
    version: '1.0',
    timestamp: context.now.toISOString(),
    KinesisBatchInfo: {
      shardId: source.shardId,
      startSequenceNumber: first?.kinesis.sequenceNumber,
      endSequenceNumber: last?.kinesis.sequenceNumber,
      approximateArrivalOfFirstRecord: arrival(first),
      approximateArrivalOfLastRecord: arrival(last),
      batchSize: discarded.length,
      streamArn: source.streamArn,
    },
  };
}
