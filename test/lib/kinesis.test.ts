import { KinesisClient, PutRecordCommand, PutRecordsCommand, type PutRecordCommandInput, type PutRecordsCommandInput } from '@aws-sdk/client-kinesis';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { KinesisStreamRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { putRecord, putRecords, readTelemetryConfig, startTelemetry, traceKinesisRecords, withSpan } from '../../lib';
import { captureSpans, kinesisEvent, kinesisRecord, kinesisRecordFromPutRecord, lambdaContext, type SpanCapture } from '../../lib/testing';

const STREAM = 'order-events';
const kinesisMock = mockClient(KinesisClient);
const kinesis = new KinesisClient({ region: 'eu-west-1' });
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | undefined) => Buffer.from(data ?? new Uint8Array()).toString('utf8');
const dataOf = (record: KinesisStreamRecord) => Buffer.from(record.kinesis.data, 'base64');

let capture: SpanCapture;
beforeEach(() => {
  kinesisMock.reset();
  kinesisMock.on(PutRecordCommand).resolves({ ShardId: 'shardId-000000000001', SequenceNumber: '4959001' });
  capture = captureSpans();
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  return () => vi.restoreAllMocks();
});

/** The PutRecord input the client was given (the n-th call). */
function sentPutRecord(call = 0): PutRecordCommandInput {
  return kinesisMock.commandCalls(PutRecordCommand)[call].args[0].input;
}

describe('putRecord → traceKinesisRecords', () => {
  it("continues the producer's trace in the consumer, whose handler sees the data exactly as the producer wrote it", async () => {
    // Arrange: JSON with spacing, key order and number spellings that a re-serialization would change
    const written = '{ "orderId":"o-1",  "total": 1.50, "n": 1e3, "é": "\\u00e9" }';
    const seen: string[] = [];
    const consumer = traceKinesisRecords(async (record) => {
      seen.push(dataOf(record).toString('utf8'));
    });

    // Act
    await withSpan('place order', () => putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'o-1', Data: bytes(written) }));
    const result = await consumer(kinesisEvent([kinesisRecordFromPutRecord(sentPutRecord())]), lambdaContext());

    // Assert
    const producer = capture.span(`send ${STREAM}`);
    const processed = capture.span(`process ${STREAM}`);
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual([written]);
    expect(processed.kind).toBe(SpanKind.CONSUMER);
    expect(processed.spanContext().traceId).toBe(producer.spanContext().traceId);
    expect(processed.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    expect(processed.attributes['traced_lambda.parent.source']).toBe('kinesis-record-data');
    expect(processed.attributes['messaging.system']).toBe('aws_kinesis');
    expect(processed.attributes['aws.kinesis.stream_name']).toBe(STREAM);
    expect(processed.attributes['messaging.destination.partition.id']).toBe('shardId-000000000000');
  });

  it('writes the context as the first member of a JSON object, which stays one JSON object for any reader', async () => {
    // Act
    await withSpan('place order', () => putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'o-1', Data: bytes('{"orderId":"o-1"}') }));

    // Assert
    const producer = capture.span(`send ${STREAM}`);
    const { traceId, spanId } = producer.spanContext();
    const sent = text(sentPutRecord().Data);
    expect(sent).toMatch(new RegExp(`^\\{"traced_lambda\\.trace":\\{"traceparent":"00-${traceId}-${spanId}-01" *\\},"orderId":"o-1"\\}$`));
    expect(JSON.parse(sent)).toEqual({ 'traced_lambda.trace': { traceparent: `00-${traceId}-${spanId}-01` }, orderId: 'o-1' });
    expect(producer.kind).toBe(SpanKind.PRODUCER);
    expect(producer.attributes).toEqual({
      'messaging.system': 'aws_kinesis',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.destination.name': STREAM,
      'aws.kinesis.stream_name': STREAM,
      'messaging.destination.partition.id': 'shardId-000000000001',
      'messaging.message.id': '4959001',
    });
  });

  it.each([
    ['an empty object', '{}'],
    ['an empty object with spaces', '{ \n }'],
    ['a nested object', '{"a":{"b":[1,{"c":"}"}]},"d":"\\"{"}'],
  ])('gives the consumer %s back byte for byte', async (_name, written) => {
    // Arrange
    const seen: string[] = [];
    const consumer = traceKinesisRecords(async (record) => {
      seen.push(dataOf(record).toString('utf8'));
    });

    // Act
    await putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'k', Data: bytes(written) });
    await consumer(kinesisEvent([kinesisRecordFromPutRecord(sentPutRecord())]), lambdaContext());

    // Assert: the producer did write a context, and the consumer continued it
    expect(text(sentPutRecord().Data)).not.toBe(written);
    expect(seen).toEqual([written]);
    expect(capture.span(`process ${STREAM}`).parentSpanContext?.spanId).toBe(capture.span(`send ${STREAM}`).spanContext().spanId);
  });

  it('gives back producer data of every length byte for byte, multi-byte characters included', async () => {
    // Arrange: the bytes after the member fall on every position against base64's 3-byte groups
    const written = Array.from({ length: 12 }, (_, length) => `{"k":"${'é€x'.slice(0, length % 3)}${'y'.repeat(length)}"}`);
    const seen: string[] = [];
    const consumer = traceKinesisRecords(async (record) => {
      seen.push(dataOf(record).toString('utf8'));
    });

    // Act
    for (const data of written) await putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'k', Data: bytes(data) });
    const records = written.map((_, call) => kinesisRecordFromPutRecord(sentPutRecord(call)));
    await consumer(kinesisEvent(records), lambdaContext());

    // Assert
    expect(seen).toEqual(written);
    expect(capture.spans().filter((span) => span.name === `process ${STREAM}` && span.parentSpanContext)).toHaveLength(written.length);
  });

  it.each([
    // 98 bytes before the producer's: not 3n+1, so the producer's bytes are not whole base64 groups of the record
    ['another writer, unaligned', (traceparent: string) => `{"traced_lambda.trace":{"traceparent": "${traceparent}"},"a":1}`],
    [
      'a tracestate longer than the first decoded bytes',
      (traceparent: string) =>
        `{"traced_lambda.trace":{"traceparent":"${traceparent}","tracestate":"${Array.from({ length: 30 }, (_, i) => `k${i}=${'v'.repeat(40)}`).join(',')}"},"a":1}`,
    ],
  ])('reads a member written by %s, and gives back the rest byte for byte', async (_name, write) => {
    // Arrange
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const seen: string[] = [];
    const consumer = traceKinesisRecords(async (record) => {
      seen.push(dataOf(record).toString('utf8'));
    });

    // Act
    await consumer(kinesisEvent([kinesisRecord({ data: write(traceparent) + ' '.repeat(2000) })]), lambdaContext());

    // Assert
    expect(seen).toEqual([`{"a":1}${' '.repeat(2000)}`]);
    expect(capture.spans()[0].parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
  });

  it.each([
    ['binary data', Uint8Array.from([0x00, 0xff, 0x7b, 0x22, 0x10])],
    ['plain text', bytes('order o-1 placed')],
    ['a JSON array', bytes('[{"orderId":"o-1"}]')],
    ['text that opens with a brace but is no JSON', bytes('{orderId: o-1}')],
    ['a JSON object in invalid UTF-8', Uint8Array.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])],
  ])('sends %s untouched, and its consumer starts a new trace', async (_name, data) => {
    // Arrange
    const seen: Buffer[] = [];
    const consumer = traceKinesisRecords(async (record) => {
      seen.push(dataOf(record));
    });

    // Act
    await withSpan('place order', () => putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'k', Data: data }));
    await consumer(kinesisEvent([kinesisRecordFromPutRecord(sentPutRecord())]), lambdaContext());

    // Assert
    expect(sentPutRecord().Data).toBe(data);
    expect(seen).toEqual([Buffer.from(data)]);
    const processed = capture.span(`process ${STREAM}`);
    expect(processed.parentSpanContext).toBeUndefined();
    expect(processed.attributes['traced_lambda.parent.source']).toBe('none');
  });

  it('sends a record that the context would take past the 1 MiB record limit unchanged, and says so once', async () => {
    // Arrange: data plus partition key one byte under 1 MiB; the context would add about 80 bytes
    const partitionKey = 'o-1';
    const filler = 1024 * 1024 - 1 - partitionKey.length - '{"pad":""}'.length;
    const data = bytes(`{"pad":"${'x'.repeat(filler)}"}`);
    const messages: string[] = [];
    const record = (message: string) => void messages.push(message);
    const logger = { info: record, error: record, warn: record, debug: () => undefined, verbose: () => undefined };
    startTelemetry(readTelemetryConfig({ OTEL_LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'none' }), { logger });

    // Act
    await putRecord(kinesis, { StreamName: STREAM, PartitionKey: partitionKey, Data: data });
    await putRecord(kinesis, { StreamName: STREAM, PartitionKey: partitionKey, Data: data });
    await putRecord(kinesis, { StreamName: STREAM, PartitionKey: partitionKey, Data: bytes('{"small":true}') }, { maxRecordBytes: 20 });

    // Assert
    expect(sentPutRecord(0).Data).toBe(data);
    expect(sentPutRecord(1).Data).toBe(data);
    expect(text(sentPutRecord(2).Data)).toBe('{"small":true}');
    expect(messages.filter((message) => message.includes('Kinesis record'))).toHaveLength(1);
  });

  it("keeps the caller's SDK result and error unchanged, and marks the span failed on an error", async () => {
    // Arrange
    const failure = Object.assign(new Error('Rate exceeded for shard'), { name: 'ProvisionedThroughputExceededException' });
    kinesisMock.on(PutRecordCommand).rejectsOnce(failure).resolves({ ShardId: 's', SequenceNumber: '1' });

    // Act / Assert
    await expect(putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'k', Data: bytes('{}') })).rejects.toBe(failure);
    await expect(putRecord(kinesis, { StreamName: STREAM, PartitionKey: 'k', Data: bytes('{}') })).resolves.toEqual({ ShardId: 's', SequenceNumber: '1' });
    const [failed] = capture.spans();
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes['error.type']).toBe('ProvisionedThroughputExceededException');
  });
});

describe('putRecords', () => {
  it('gives each record its own PRODUCER span, which that record carries and its consumer continues', async () => {
    // Arrange
    kinesisMock.on(PutRecordsCommand).resolves({
      FailedRecordCount: 1,
      Records: [
        { ShardId: 'shardId-000000000000', SequenceNumber: '11' },
        { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded' },
      ],
    });
    const input: PutRecordsCommandInput = {
      StreamName: STREAM,
      Records: [
        { PartitionKey: 'a', Data: bytes('{"n":1}') },
        { PartitionKey: 'b', Data: bytes('{"n":2}') },
      ],
    };
    const traceIds: string[] = [];
    const consumer = traceKinesisRecords(async () => {
      const { trace, context } = await import('@opentelemetry/api');
      traceIds.push(trace.getSpanContext(context.active())?.spanId ?? '');
    });

    // Act
    await withSpan('publish', () => putRecords(kinesis, input));
    const sent = kinesisMock.commandCalls(PutRecordsCommand)[0].args[0].input;
    await consumer(kinesisEvent((sent.Records ?? []).map((entry) => kinesisRecordFromPutRecord({ ...entry, StreamName: STREAM }))), lambdaContext());

    // Assert
    const batch = capture.span(`send ${STREAM}`);
    const creates = capture.spans().filter((span) => span.name === `create ${STREAM}`);
    const processed = capture.spans().filter((span) => span.name === `process ${STREAM}`);
    expect(batch.kind).toBe(SpanKind.CLIENT);
    expect(batch.attributes['messaging.batch.message_count']).toBe(2);
    expect(batch.status.code).toBe(SpanStatusCode.ERROR);
    expect(creates.map((span) => [span.kind, span.status.code, span.attributes['messaging.message.id']])).toEqual([
      [SpanKind.PRODUCER, SpanStatusCode.UNSET, '11'],
      [SpanKind.PRODUCER, SpanStatusCode.ERROR, undefined],
    ]);
    expect(processed.map((span) => span.parentSpanContext?.spanId)).toEqual(creates.map((span) => span.spanContext().spanId));
    expect(traceIds).toEqual(processed.map((span) => span.spanContext().spanId));
    expect(input.Records?.map((record) => text(record.Data))).toEqual(['{"n":1}', '{"n":2}']);
  });

  it('leaves the context out of the records that would take the request past 5 MiB', async () => {
    // Arrange: five records of 1 MiB less 50 bytes each (on a stream taking 2 MiB records), the request 250 bytes
    // under 5 MiB; a context adds about 80 bytes
    kinesisMock.on(PutRecordsCommand).resolves({ FailedRecordCount: 0, Records: [] });
    const size = 1024 * 1024 - 50;
    const record = () => ({ PartitionKey: 'k', Data: bytes(`{"pad":"${'x'.repeat(size - '{"pad":""}'.length - 1)}"}`) });
    const input = { StreamName: STREAM, Records: [record(), record(), record(), record(), record()] };

    // Act
    await putRecords(kinesis, input, { maxRecordBytes: 2 * 1024 * 1024 });

    // Assert: the first records carry a context, the last does not; the request stays within 5 MiB
    const sent = kinesisMock.commandCalls(PutRecordsCommand)[0].args[0].input.Records ?? [];
    const total = sent.reduce((sum, entry) => sum + (entry.Data?.length ?? 0) + (entry.PartitionKey?.length ?? 0), 0);
    expect(text(sent[0].Data).startsWith('{"traced_lambda.trace":')).toBe(true);
    expect(sent[4].Data).toBe(input.Records[4].Data);
    expect(total).toBeLessThanOrEqual(5 * 1024 * 1024);
  });
});

describe('traceKinesisRecords', () => {
  it("reports the first failed record's sequence number, runs none after it, and marks its span failed", async () => {
    // Arrange
    const records = ['1', '2', '3', '4'].map((sequenceNumber) => kinesisRecord({ sequenceNumber, data: `{"n":${sequenceNumber}}` }));
    const processed: string[] = [];
    const handler = traceKinesisRecords(async (record) => {
      processed.push(record.kinesis.sequenceNumber);
      if (record.kinesis.sequenceNumber === '2') throw new Error('cannot process');
    });

    // Act
    const result = await handler(kinesisEvent(records), lambdaContext());

    // Assert: Lambda retries from "2" on, so "3" and "4" were not run
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    expect(processed).toEqual(['1', '2']);
    expect(capture.spans().map((span) => [span.attributes['messaging.message.id'], span.status.code])).toEqual([
      ['1', SpanStatusCode.UNSET],
      ['2', SpanStatusCode.ERROR],
    ]);
  });

  it("links each record's span to its producer under the links strategy, each a new trace", async () => {
    // Arrange
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const handler = traceKinesisRecords(async () => undefined, { strategy: 'links' });

    // Act
    await handler(kinesisEvent([kinesisRecord({ data: '{"n":1}', traceparent })]), lambdaContext());

    // Assert
    const [span] = capture.spans();
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.spanContext().traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(span.links.map((link) => link.context.spanId)).toEqual(['00f067aa0ba902b7']);
    expect(span.attributes['traced_lambda.parent.source']).toBe('kinesis-record-data');
  });

  it('keeps the order of a shard under the concurrency option', async () => {
    // Arrange
    const records = ['1', '2', '3'].map((sequenceNumber) => kinesisRecord({ sequenceNumber }));
    const order: string[] = [];
    const handler = traceKinesisRecords(
      async (record) => {
        order.push(`start ${record.kinesis.sequenceNumber}`);
        await new Promise((resolve) => setTimeout(resolve, 2));
        order.push(`end ${record.kinesis.sequenceNumber}`);
      },
      { concurrency: 3 },
    );

    // Act
    await handler(kinesisEvent(records), lambdaContext());

    // Assert
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it.each([
    [
      'data that only opens like a context',
      { kinesis: { data: Buffer.from('{"traced_lambda.trace":{"traceparent":').toString('base64'), sequenceNumber: '1' } },
    ],
    ['a context member that is no JSON', { kinesis: { data: Buffer.from('{"traced_lambda.trace":{nope},"a":1}').toString('base64'), sequenceNumber: '1' } }],
    [
      'a malformed traceparent',
      { kinesis: { data: Buffer.from('{"traced_lambda.trace":{"traceparent":"00-xyz"},"a":1}').toString('base64'), sequenceNumber: '1' } },
    ],
    ['data that is not base64', { kinesis: { data: '!!!not base64!!!', sequenceNumber: '1' } }],
    ['data of the wrong type', { kinesis: { data: 42, sequenceNumber: '1' } }],
    ['no kinesis payload', { eventID: 17 }],
    ['null', null],
  ])('runs the handler for a record with %s, without a parent and without crashing', async (_name, record) => {
    // Arrange
    const seen: unknown[] = [];
    const handler = traceKinesisRecords(async (received) => {
      seen.push(received);
    });

    // Act
    const result = await handler(kinesisEvent([record as unknown as KinesisStreamRecord]), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen).toHaveLength(1);
    const [span] = capture.spans();
    expect(span.parentSpanContext).toBeUndefined();
  });

  it('cuts the reserved member out of the data even when its traceparent is malformed', async () => {
    // Arrange: the member is well-formed JSON, only its traceparent is invalid; the producer's data is the rest
    const record = kinesisRecord({ data: '{"traced_lambda.trace":{"traceparent":"00-xyz"},"a":1}' });
    const seen: string[] = [];
    const handler = traceKinesisRecords(async (received) => {
      seen.push(dataOf(received).toString('utf8'));
    });

    // Act
    await handler(kinesisEvent([record]), lambdaContext());

    // Assert: the reserved member is the kit's, so it is cut out whatever its value; the parent is absent
    expect(seen).toEqual(['{"a":1}']);
    expect(capture.spans()[0].parentSpanContext).toBeUndefined();
  });

  it('hands the handler the data as the producer wrote it with tracing turned off too (OTEL_SDK_DISABLED)', async () => {
    // Arrange
    const record = kinesisRecord({ data: '{"n":1}', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
    const off = captureSpans({ OTEL_SDK_DISABLED: 'true' });
    const seen: string[] = [];
    const handler = traceKinesisRecords(async (received) => {
      seen.push(dataOf(received).toString('utf8'));
    });

    // Act
    const result = await handler(kinesisEvent([record]), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual(['{"n":1}']);
    expect(off.spans()).toEqual([]);
  });

  it('rethrows nothing and reports the record when the handler throws a non-Error', async () => {
    // Arrange
    const handler = traceKinesisRecords(() => Promise.reject('plain string'));

    // Act
    const result = await handler(kinesisEvent([kinesisRecord({ sequenceNumber: '7' })]), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: '7' }] });
  });
});
