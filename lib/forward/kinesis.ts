import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { KinesisClient, PutRecordCommandInput, PutRecordCommandOutput, PutRecordsCommandInput, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { loadKinesisCommands } from './aws-sdk';
import { endSpan, recordFailure } from '../invocation/span-outcome';
import { ATTR_ERROR_TYPE, ATTR_MESSAGING_BATCH_MESSAGE_COUNT } from '../semconv';
import { getTelemetry } from '../telemetry';
import { forwardParentContext, runOutgoingCall, type ForwardOptions } from './parent';
import {
  addKinesisSpanAttributes,
  injectIntoKinesisRecord,
  KINESIS_DEFAULT_MAX_RECORD_BYTES,
  KINESIS_MAX_REQUEST_BYTES,
  kinesisSpanName,
  kinesisStreamOfArn,
  reportRecordTooLargeForContext,
  setKinesisPutResultAttributes,
} from '../carriers/kinesis';

export interface KinesisForwardOptions extends ForwardOptions {
  /**
   * The stream's maximum record size in bytes, data plus partition key (default 1 MiB, a stream's default
   * `MaxRecordSizeInKiB`): a record the context would take past it is sent without the context.
   */
  maxRecordBytes?: number;
}

/**
 * Writes one record with a PRODUCER `send <stream>` span around the call and the span's context in the record's data
 * when the data is a JSON object (docs/reference.md, "Kinesis Data Streams"). The SDK's result and errors pass through
 * unchanged.
 */
export async function putRecord(client: KinesisClient, input: PutRecordCommandInput, options: KinesisForwardOptions = {}): Promise<PutRecordCommandOutput> {
  const stream = streamOf(input);
  const maxRecordBytes = options.maxRecordBytes ?? KINESIS_DEFAULT_MAX_RECORD_BYTES;
  return runOutgoingCall({
    name: kinesisSpanName('send', stream),
    kind: SpanKind.PRODUCER,
    attributes: addKinesisSpanAttributes({}, 'send', stream),
    options,
    send: (callContext) => client.send(new (loadKinesisCommands().PutRecordCommand)(injectIntoKinesisRecord(input, callContext, maxRecordBytes).input)),
    onResult: (span, output) => setKinesisPutResultAttributes(span, output?.ShardId, output?.SequenceNumber),
  });
}

/**
 * Writes a batch with a CLIENT `send <stream>` span around the call and one PRODUCER `create <stream>` span per
 * record, whose own context that record carries: each record continues its own branch of the trace. Records that
 * Kinesis reports failed get an ERROR span. No record is taken past `maxRecordBytes`, nor the request past 5 MiB, by
 * its context. The SDK's result and errors pass through unchanged.
 */
export async function putRecords(client: KinesisClient, input: PutRecordsCommandInput, options: KinesisForwardOptions = {}): Promise<PutRecordsCommandOutput> {
  const { tracer } = getTelemetry();
  const stream = streamOf(input);
  const records = input.Records ?? [];
  const maxRecordBytes = options.maxRecordBytes ?? KINESIS_DEFAULT_MAX_RECORD_BYTES;
  const parent = forwardParentContext(options);
  const batchSpan = tracer.startSpan(
    kinesisSpanName('send', stream),
    { kind: SpanKind.CLIENT, attributes: addKinesisSpanAttributes({ [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: records.length }, 'send', stream) },
    parent,
  );
  const batchContext = trace.setSpan(parent, batchSpan);
  let requestBytes = records.reduce((total, record) => total + recordBytes(record), 0);
  const recordSpans: Span[] = [];
  const tracedRecords = records.map((record) => {
    const span = tracer.startSpan(
      kinesisSpanName('create', stream),
      { kind: SpanKind.PRODUCER, attributes: addKinesisSpanAttributes({}, 'create', stream) },
      batchContext,
    );
    recordSpans.push(span);
    const traced = injectIntoKinesisRecord(record, trace.setSpan(batchContext, span), maxRecordBytes);
    if (traced.added === 0) return record;
    if (requestBytes + traced.added > KINESIS_MAX_REQUEST_BYTES) {
      reportRecordTooLargeForContext(KINESIS_MAX_REQUEST_BYTES);
      return record;
    }
    requestBytes += traced.added;
    return traced.input;
  });
  try {
    const output = await context.with(batchContext, () => client.send(new (loadKinesisCommands().PutRecordsCommand)({ ...input, Records: tracedRecords })));
    // Kinesis answers each record at its own index.
    (output?.Records ?? []).forEach((result, index) => {
      const span = recordSpans[index];
      if (!span || !result) return;
      if (result.ErrorCode) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: result.ErrorMessage ?? result.ErrorCode });
        span.setAttribute(ATTR_ERROR_TYPE, result.ErrorCode);
      } else {
        setKinesisPutResultAttributes(span, result.ShardId, result.SequenceNumber);
      }
    });
    if ((output?.FailedRecordCount ?? 0) > 0) batchSpan.setStatus({ code: SpanStatusCode.ERROR, message: 'some records failed' });
    return output;
  } catch (error) {
    recordFailure(batchSpan, error);
    for (const span of recordSpans) recordFailure(span, error);
    throw error;
  } finally {
    for (const span of recordSpans) endSpan(span);
    endSpan(batchSpan);
  }
}

/** The size Kinesis counts for a record: its data and its partition key's UTF-8 bytes. */
function recordBytes(record: { Data: Uint8Array | undefined; PartitionKey?: string | undefined }): number {
  const data = record.Data instanceof Uint8Array ? record.Data.length : 0;
  return data + (typeof record.PartitionKey === 'string' ? Buffer.byteLength(record.PartitionKey, 'utf8') : 0);
}

function streamOf(input: { StreamName?: string; StreamARN?: string }): string | undefined {
  return input.StreamName || kinesisStreamOfArn(input.StreamARN);
}
