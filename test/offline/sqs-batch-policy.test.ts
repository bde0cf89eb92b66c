import { describe, expect, it } from 'vitest';
import { sqsRecord } from '../../lib/testing';
import { batchIsReady, nextReceiveCount, settleBatch, toLambdaRecord } from '../../scripts/offline/sqs-batch-policy';

const ids = (...names: string[]) => names.map((messageId) => sqsRecord({ messageId }));
const inGroup = (group: string, ...names: string[]) =>
  names.map((messageId) => sqsRecord({ messageId, queueName: 'jobs.fifo', attributes: { MessageGroupId: group } }));

describe('when the offline SQS event source invokes', () => {
  const settings = { batchSize: 10, windowMs: 1000 };

  it('waits for a first record, then for a full batch or the end of the window, whichever comes first', () => {
    expect(batchIsReady(0, undefined, 5000, settings)).toBe(false);
    expect(batchIsReady(3, 1000, 1999, settings)).toBe(false);
    expect(batchIsReady(3, 1000, 2000, settings)).toBe(true);
    expect(batchIsReady(10, 1000, 1001, settings)).toBe(true);
    expect(batchIsReady(1, 1000, 1000, { batchSize: 10, windowMs: 0 })).toBe(true);
  });

  it('never asks SQS for more than ten messages, nor for more than the batch has room for', () => {
    expect(nextReceiveCount(0, 100)).toBe(10);
    expect(nextReceiveCount(7, 10)).toBe(3);
    expect(nextReceiveCount(0, 1)).toBe(1);
  });
});

describe('the record the offline SQS event source sends', () => {
  it('has the shape Lambda gives: system attributes, message attributes, source and region', () => {
    const record = toLambdaRecord(
      {
        MessageId: 'm-1',
        ReceiptHandle: 'r-1',
        Body: '{"id":1}',
        MD5OfBody: 'abc',
        Attributes: { ApproximateReceiveCount: '2', SentTimestamp: '1700000000000', ApproximateFirstReceiveTimestamp: '', AWSTraceHeader: 'Root=1-x' },
        MessageAttributes: { traceparent: { DataType: 'String', StringValue: '00-…' } },
      },
      'arn:aws:sqs:eu-west-1:000000000000:jobs',
      'eu-west-1',
    );

    expect(record).toEqual({
      messageId: 'm-1',
      receiptHandle: 'r-1',
      body: '{"id":1}',
      attributes: { ApproximateReceiveCount: '2', SentTimestamp: '1700000000000', AWSTraceHeader: 'Root=1-x' },
      messageAttributes: { traceparent: { stringValue: '00-…', stringListValues: [], binaryListValues: [], dataType: 'String' } },
      md5OfBody: 'abc',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:000000000000:jobs',
      awsRegion: 'eu-west-1',
    });
  });
});

describe('which records a finished batch deletes', () => {
  const partial = { reportBatchItemFailures: true, fifo: false };

  it('keeps every record when the function threw or timed out', () => {
    expect(settleBatch(ids('a', 'b'), { functionError: 'Unhandled' }, partial)).toMatchObject({ done: [], retried: ['a', 'b'] });
  });

  it('deletes every record when the function returned and does not report failures', () => {
    const result = { payload: { batchItemFailures: [{ itemIdentifier: 'a' }] } };
    expect(settleBatch(ids('a', 'b'), result, { reportBatchItemFailures: false, fifo: false })).toEqual({ done: ['a', 'b'], retried: [] });
  });

  it('keeps only the reported records', () => {
    const result = { payload: { batchItemFailures: [{ itemIdentifier: 'b' }] } };
    expect(settleBatch(ids('a', 'b', 'c'), result, partial)).toEqual({ done: ['a', 'c'], retried: ['b'] });
  });

  it.each([undefined, null, {}, { batchItemFailures: null }, { batchItemFailures: [] }])('takes %j as a complete success', (payload) => {
    expect(settleBatch(ids('a', 'b'), { payload }, partial)).toEqual({ done: ['a', 'b'], retried: [] });
  });

  it.each([
    [{ batchItemFailures: [{ itemIdentifier: '' }] }, 'an itemIdentifier is ""'],
    [{ batchItemFailures: [{ itemIdentifier: null }] }, 'an itemIdentifier is null'],
    [{ batchItemFailures: [{ itemId: 'a' }] }, 'an itemIdentifier is null'],
    [{ batchItemFailures: [{ itemIdentifier: 'zzz' }] }, 'itemIdentifier "zzz" is no message of the batch'],
    [{ batchItemFailures: 'a' }, 'batchItemFailures is not a list'],
  ])('takes %j as a failure of the whole batch', (payload, reason) => {
    expect(settleBatch(ids('a', 'b'), { payload }, partial)).toEqual({ done: [], retried: ['a', 'b'], reason });
  });

  it('holds back the records after a failed one in its FIFO message group, and only those', () => {
    const records = [...inGroup('g1', 'g1-1', 'g1-2', 'g1-3'), ...inGroup('g2', 'g2-1')];
    const result = { payload: { batchItemFailures: [{ itemIdentifier: 'g1-2' }] } };

    expect(settleBatch(records, result, { reportBatchItemFailures: true, fifo: true })).toEqual({ done: ['g1-1', 'g2-1'], retried: ['g1-2', 'g1-3'] });
  });
});
