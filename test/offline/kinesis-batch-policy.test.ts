import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { failureRecord, freshShard, settleShardBatch, toKinesisLambdaRecord, type ShardSource } from '../../scripts/offline/kinesis-batch-policy';

const SOURCE: ShardSource = {
  shardId: 'shardId-000000000000',
  streamArn: 'arn:aws:kinesis:eu-west-1:000000000000:stream/events',
  region: 'eu-west-1',
  invokeIdentityArn: 'arn:aws:iam::000000000000:role/consumer',
};

/** Records of one shard with these sequence numbers, in order. */
const records = (...sequenceNumbers: string[]): KinesisStreamRecord[] =>
  sequenceNumbers.map((sequenceNumber, index) =>
    toKinesisLambdaRecord(
      {
        SequenceNumber: sequenceNumber,
        PartitionKey: 'k',
        Data: Buffer.from(`{"n":${index}}`),
        ApproximateArrivalTimestamp: new Date(1_700_000_000_000 + index),
      },
      SOURCE,
    ),
  );
const reported = (...sequenceNumbers: (string | null)[]) => ({ payload: { batchItemFailures: sequenceNumbers.map((itemIdentifier) => ({ itemIdentifier })) } });
const settings = { batchSize: 10, reportBatchItemFailures: true, maximumRetryAttempts: 3, bisectBatchOnFunctionError: false };

describe('the record the offline Kinesis event source sends', () => {
  it("has the shape Lambda gives: the data in base64, the shard's id with the sequence number, source, region and role", () => {
    // Act
    const [record] = records('49590338271490256608559692538361571095921575989136588898');

    // Assert
    expect(record).toEqual({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: 'k',
        sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
        data: Buffer.from('{"n":0}').toString('base64'),
        approximateArrivalTimestamp: 1_700_000_000,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: 'shardId-000000000000:49590338271490256608559692538361571095921575989136588898',
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/consumer',
      awsRegion: 'eu-west-1',
      eventSourceARN: 'arn:aws:kinesis:eu-west-1:000000000000:stream/events',
    });
  });
});

describe('where the shard goes on after an invocation', () => {
  it('moves past the whole batch on a success, an empty response or an empty batchItemFailures', () => {
    const batch = records('1', '2', '3');
    for (const result of [{ payload: undefined }, { payload: {} }, { payload: { batchItemFailures: [] } }, { payload: { batchItemFailures: null } }]) {
      expect(settleShardBatch(batch, result, freshShard(10), settings)).toEqual({ done: 3, discarded: [], next: freshShard(10) });
    }
  });

  it('retries from the lowest reported sequence number: the records before it are done', () => {
    // Act: two failures reported, the later first
    const step = settleShardBatch(records('1', '2', '3', '4'), reported('4', '2'), freshShard(10), settings);

    // Assert
    expect(step).toMatchObject({ done: 1, discarded: [], next: { failures: 1, limit: 10 } });
    expect(step.reason).toContain('sequence number 2 reported failed');
  });

  it('retries the whole batch when the function throws, or reports an empty, null or unknown itemIdentifier', () => {
    const batch = records('1', '2');
    for (const result of [{ functionError: 'Unhandled' }, reported(''), reported(null), reported('9'), { payload: { batchItemFailures: 'x' } }]) {
      expect(settleShardBatch(batch, result, freshShard(10), settings)).toMatchObject({ done: 0, discarded: [], next: { failures: 1 } });
    }
  });

  it('ignores a reported failure without ReportBatchItemFailures: any response is a success', () => {
    expect(settleShardBatch(records('1', '2'), reported('2'), freshShard(10), { ...settings, reportBatchItemFailures: false })).toMatchObject({ done: 2 });
  });

  it('gives the batch up after maximumRetryAttempts retries of the record it begins at, and moves past it', () => {
    // Arrange: the batch beginning at 2 has failed once (as a partial failure) and been retried twice
    const batch = records('2', '3');
    let state = freshShard(10);
    state = settleShardBatch(records('1', '2', '3'), reported('2'), state, settings).next;
    state = settleShardBatch(batch, reported('2'), state, settings).next;
    state = settleShardBatch(batch, { functionError: 'Unhandled' }, state, settings).next;
    expect(state.failures).toBe(3);

    // Act: the third retry fails too
    const step = settleShardBatch(batch, reported('2'), state, settings);

    // Assert: 1 + 3 invocations of the batch, then it is given up whole
    expect(step).toMatchObject({ done: 2, discarded: batch, next: freshShard(10) });
    expect(step.reason).toContain('retries exhausted');
  });

  it('retries without end when maximumRetryAttempts is -1 (the default)', () => {
    let state = freshShard(10);
    for (let attempt = 0; attempt < 50; attempt++)
      state = settleShardBatch(records('1'), { functionError: 'Unhandled' }, state, { ...settings, maximumRetryAttempts: -1 }).next;
    expect(state.failures).toBe(50);
  });

  it('counts the retries anew once the shard has moved past a record', () => {
    const state = settleShardBatch(records('1', '2'), { functionError: 'Unhandled' }, freshShard(10), settings).next;
    expect(settleShardBatch(records('1', '2'), reported('2'), state, settings).next).toEqual({ failures: 1, limit: 10 });
  });

  it('bisects a batch whose invocation failed, without using a retry, when bisectBatchOnFunctionError is set', () => {
    const bisecting = { ...settings, bisectBatchOnFunctionError: true };
    const halved = settleShardBatch(records('1', '2', '3', '4', '5'), { functionError: 'Unhandled' }, freshShard(10), bisecting);
    expect(halved).toMatchObject({ done: 0, next: { failures: 0, limit: 3 } });
    // A single record cannot be split: its failure is a retry.
    expect(settleShardBatch(records('1'), { functionError: 'Unhandled' }, { failures: 0, limit: 1 }, bisecting).next).toEqual({ failures: 1, limit: 1 });
    // Once a batch succeeds, the next one is full size again.
    expect(settleShardBatch(records('1', '2', '3'), {}, halved.next, bisecting).next).toEqual(freshShard(10));
  });
});

describe('the description of a batch given up', () => {
  it("is Lambda's invocation record: the condition, the invocations and the batch's place in the shard, not its data", () => {
    // Act
    const description = failureRecord(records('7', '8', '9'), SOURCE, {
      requestId: 'r-1',
      functionArn: 'arn:aws:lambda:eu-west-1:000000000000:function:consumer',
      approximateInvokeCount: 4,
      functionError: 'Unhandled',
      now: new Date('2026-01-01T00:00:00Z'),
    });

    // Assert
    expect(description).toEqual({
      requestContext: {
        requestId: 'r-1',
        functionArn: 'arn:aws:lambda:eu-west-1:000000000000:function:consumer',
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: 4,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      timestamp: '2026-01-01T00:00:00.000Z',
      KinesisBatchInfo: {
        shardId: 'shardId-000000000000',
        startSequenceNumber: '7',
        endSequenceNumber: '9',
        approximateArrivalOfFirstRecord: '2023-11-14T22:13:20.000Z',
        approximateArrivalOfLastRecord: '2023-11-14T22:13:20.002Z',
        batchSize: 3,
        streamArn: 'arn:aws:kinesis:eu-west-1:000000000000:stream/events',
      },
    });
    expect(JSON.stringify(description)).not.toContain(Buffer.from('{"n":0}').toString('base64'));
  });
});
