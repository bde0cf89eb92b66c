import type { Context as LambdaContext, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { LambdaFn } from '../invocation/invocation';
import { traceRecordBatch, type BatchStrategy, type RecordBatchOptions, type RecordBatchSource } from '../invocation/record-batch';
import { addSqsSpanAttributes, extractParentFromSqsRecord, setSqsRecordAttributes, sqsQueueOf, sqsSpanName } from '../carriers/sqs';

/** Handles one SQS record; a rejection marks that record failed (it is retried), the others still succeed. */
export type SqsRecordHandler = (record: SQSRecord, context: LambdaContext) => Promise<void>;

/** How the spans of a batch relate to the messages' producers (`parent`, `links`, `both`): see `BatchStrategy`. */
export type SqsBatchStrategy = BatchStrategy;

/**
 * `concurrency`: how many records of a batch run at once (default 1: one after another); on a FIFO queue, the
 * records of one message group always run in order, one at a time.
 */
export type SqsHandlerOptions = RecordBatchOptions;

/**
 * SQS records for the record-batch lifecycle: CONSUMER `process <queue>`, the parent from the message, every failed
 * message reported by its id. On a FIFO queue the records of one message group keep their order: a failure holds
 * back the rest of its group, each reported too.
 */
const sqsRecords: RecordBatchSource<SQSRecord> = {
  extractParent: extractParentFromSqsRecord,
  destination: sqsQueueOf,
  spanName: (queue) => sqsSpanName('process', queue),
  addSpanAttributes: (attributes, queue) => addSqsSpanAttributes(attributes, 'process', queue),
  setRecordAttributes: setSqsRecordAttributes,
  orderingKeyOf: (records) => (records.some(isFifo) ? messageGroupOf : undefined),
  // A record with no id (never from AWS) is reported with an empty one: Lambda then retries the whole batch.
  failures: { name: 'SQS message', identifier: (record) => record?.messageId ?? '', afterFailure: 'report-rest' },
};

/**
 * Wraps a per-record SQS handler into a batch handler for an event source mapping with
 * `ReportBatchItemFailures`: one CONSUMER `process <queue>` span per record, and every failed record reported in
 * `batchItemFailures` with its span marked ERROR. Records run one after another, or `concurrency` at a time, each in
 * its own context. On a FIFO queue a message group runs in order and stops at its first failure, the rest of the
 * group reported failed too, so that its order is kept. Spans are flushed before the function returns.
 */
export function traceSqsRecords(handleRecord: SqsRecordHandler, options: SqsHandlerOptions = {}): LambdaFn<SQSEvent, SQSBatchResponse> {
  return traceRecordBatch(sqsRecords, handleRecord, options) as LambdaFn<SQSEvent, SQSBatchResponse>;
}

/** Read from each record as it came: a record that is not an object, or an ARN that is not a string, is not FIFO. */
function isFifo(record: SQSRecord | null | undefined): boolean {
  const arn: unknown = record?.eventSourceARN;
  return typeof arn === 'string' && arn.endsWith('.fifo');
}

/** A FIFO record's message group; a record without one is in the group '' (as one group, the batch keeps its order). */
function messageGroupOf(record: SQSRecord | null | undefined): string {
  const group: unknown = record?.attributes?.MessageGroupId;
  return typeof group === 'string' ? group : '';
}
