import type { Context as LambdaContext, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { LambdaFn } from '../invocation/invocation';
import { traceRecordBatch, type RecordBatchOptions, type RecordBatchSource } from '../invocation/record-batch';
import { FAAS_TRIGGER_DATASOURCE } from '../semconv';
import {
  addDynamoDbStreamSpanAttributes,
  dynamoDbRecordAsWritten,
  dynamoDbSequenceNumberOf,
  dynamoDbStreamSpanName,
  dynamoDbTableOfRecord,
  extractParentFromDynamoDbRecord,
  setDynamoDbRecordAttributes,
} from '../carriers/dynamodb-stream';

/**
 * Handles one DynamoDB stream record, its images as the writer wrote the item; a rejection marks that record failed:
 * Lambda retries the shard from it on.
 */
export type DynamoDbStreamRecordHandler = (record: DynamoDBRecord, context: LambdaContext) => Promise<void>;

/**
 * `strategy` (`parent`, `links`, `both`) and `inbound` as for SQS. `concurrency` changes nothing: a batch comes from
 * one shard, whose records run in order, one at a time.
 */
export type DynamoDbStreamHandlerOptions = RecordBatchOptions;

/**
 * DynamoDB stream records for the record-batch lifecycle: CONSUMER `process <table>` (`faas.trigger` `datasource`),
 * the parent from the item's reserved attribute. A batch is one shard's: its records run in order and a failure stops
 * it, only that record's sequence number reported, since Lambda retries every record from the lowest one reported on.
 */
const dynamoDbStreamRecords: RecordBatchSource<DynamoDBRecord> = {
  trigger: FAAS_TRIGGER_DATASOURCE,
  extractParent: extractParentFromDynamoDbRecord,
  destination: dynamoDbTableOfRecord,
  spanName: dynamoDbStreamSpanName,
  addSpanAttributes: addDynamoDbStreamSpanAttributes,
  setRecordAttributes: setDynamoDbRecordAttributes,
  // Stream records do not name their shard; Lambda gives an invocation one shard's records, so the batch is one lane.
  orderingKeyOf: () => () => '',
  // A record with no sequence number (never from AWS) is reported with an empty one: Lambda then retries the batch.
  failures: { name: 'DynamoDB stream record', identifier: dynamoDbSequenceNumberOf, afterFailure: 'retry-from' },
};

/**
 * Wraps a per-record handler into a batch handler for a DynamoDB stream's event source mapping with
 * `ReportBatchItemFailures`: one CONSUMER `process <table>` span per record, the child of the context the write wrote
 * with the item (`putItem`, `updateItem`, `transactWriteItems`; for a REMOVE, the context of the item's last write),
 * and the handler given the record with that attribute taken out of its images. Records run in order; the first
 * failure ends the batch, its `dynamodb.SequenceNumber` reported in `batchItemFailures` (the records after it are not
 * run: Lambda delivers them again). Spans are flushed before the function returns.
 */
export function traceDynamoDbStreamRecords(
  handleRecord: DynamoDbStreamRecordHandler,
  options: DynamoDbStreamHandlerOptions = {},
): LambdaFn<DynamoDBStreamEvent, DynamoDBBatchResponse> {
  const handleAsWritten: DynamoDbStreamRecordHandler = (record, lambdaContext) => handleRecord(dynamoDbRecordAsWritten(record), lambdaContext);
  return traceRecordBatch(dynamoDbStreamRecords, handleAsWritten, options) as LambdaFn<DynamoDBStreamEvent, DynamoDBBatchResponse>;
}
