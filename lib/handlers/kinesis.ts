import type { Context as LambdaContext, KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { LambdaFn } from '../invocation/invocation';
import { traceRecordBatch, type RecordBatchOptions, type RecordBatchSource } from '../invocation/record-batch';
import {
  addKinesisSpanAttributes,
  extractParentFromKinesisRecord,
  kinesisRecordAsWritten,
  kinesisShardOf,
  kinesisSpanName,
  kinesisStreamOf,
  setKinesisRecordAttributes,
} from '../carriers/kinesis';

/**
 * Handles one Kinesis record, its data as the producer wrote it; a rejection marks that record failed: Lambda retries
 * the shard from it on.
 */
export type KinesisRecordHandler = (record: KinesisStreamRecord, context: LambdaContext) => Promise<void>;

/**
 * `strategy` (`parent`, `links`, `both`) and `inbound` as for SQS. `concurrency` changes nothing: a batch comes from
 * one shard, whose records run in order, one at a time.
 */
export type KinesisHandlerOptions = RecordBatchOptions;

/**
 * Kinesis records for the record-batch lifecycle: CONSUMER `process <stream>`, the parent from the record's data. The
 * records of a shard run in order and a failure stops its shard: only that record's sequence number is reported,
 * since Lambda retries every record from the lowest one reported on.
 */
const kinesisRecords: RecordBatchSource<KinesisStreamRecord> = {
  extractParent: extractParentFromKinesisRecord,
  destination: kinesisStreamOf,
  spanName: (stream) => kinesisSpanName('process', stream),
  addSpanAttributes: (attributes, stream) => addKinesisSpanAttributes(attributes, 'process', stream),
  setRecordAttributes: setKinesisRecordAttributes,
  // A record without a readable eventID is in the shard '': as one shard, the batch keeps its order.
  orderingKeyOf: () => (record) => kinesisShardOf(record) ?? '',
  // A record with no sequence number (never from AWS) is reported with an empty one: Lambda then retries the batch.
  failures: { name: 'Kinesis record', identifier: sequenceNumberOf, afterFailure: 'retry-from' },
};

/**
 * Wraps a per-record Kinesis handler into a batch handler for an event source mapping with `ReportBatchItemFailures`:
 * one CONSUMER `process <stream>` span per record, the child of the context its producer wrote into the data
 * (`putRecord` / `putRecords`), and the handler given the record with that context taken out again. Records run in
 * order; the first failure ends the batch, its sequence number reported in `batchItemFailures` (the records after it
 * are not run: Lambda delivers them again). Spans are flushed before the function returns.
 */
export function traceKinesisRecords(
  handleRecord: KinesisRecordHandler,
  options: KinesisHandlerOptions = {},
): LambdaFn<KinesisStreamEvent, KinesisStreamBatchResponse> {
  const handleAsWritten: KinesisRecordHandler = (record, lambdaContext) => handleRecord(kinesisRecordAsWritten(record), lambdaContext);
  return traceRecordBatch(kinesisRecords, handleAsWritten, options) as LambdaFn<KinesisStreamEvent, KinesisStreamBatchResponse>;
}

function sequenceNumberOf(record: KinesisStreamRecord | null | undefined): string {
  const sequenceNumber: unknown = record?.kinesis?.sequenceNumber;
  return typeof sequenceNumber === 'string' ? sequenceNumber : '';
}
