import { SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { currentTracePayload } from '../../lib';
import { traceRecordBatch, type RecordBatchSource } from '../../lib/invocation/record-batch';
import { lookupFrom } from '../../lib/propagation/parent-lookup';
import { captureSpans, lambdaContext, type SpanCapture } from '../../lib/testing';
import { continueFromPayload } from '../../lib/propagation/trace-payload';

// The record-batch lifecycle as a source describes it. A stream source (records of a shard, retried from the first
// failed sequence number on) is described here with a synthetic record, as a Kinesis or DynamoDB Streams one would be.

/** A record of a synthetic stream: its shard, sequence number and producer's trace id. */
interface StreamRecord {
  shard: string;
  sequenceNumber: string;
  traceId: string;
}

const streamSource: RecordBatchSource<StreamRecord> = {
  extractParent: (record) => lookupFrom(() => continueFromPayload({ traceId: record.traceId, spanId: 'b'.repeat(16), traceFlags: 1 }), 'trace-payload'),
  destination: () => 'clicks',
  spanName: (stream) => `process ${stream}`,
  addSpanAttributes: (attributes: Attributes) => ((attributes['messaging.system'] = 'test_stream'), attributes),
  setRecordAttributes: (attributes, record) => (attributes['messaging.message.id'] = record.sequenceNumber),
  orderingKeyOf: () => (record) => record.shard,
  failures: { name: 'Stream record', identifier: (record) => record.sequenceNumber, afterFailure: 'retry-from' },
};

const streamRecord = (shard: string, sequenceNumber: string, digit = '1'): StreamRecord => ({ shard, sequenceNumber, traceId: digit.repeat(32) });

/** A promise and the function that resolves it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

let capture: SpanCapture;
beforeEach(() => {
  capture = captureSpans();
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  return () => vi.restoreAllMocks();
});

describe('a source retried from its first failed record on (stream shards)', () => {
  it("reports the first failed record's sequence number and runs none of the records after it in its shard", async () => {
    // Arrange: two shards; shard A fails at its second record, shard B does not fail
    const records = [streamRecord('A', '1'), streamRecord('A', '2'), streamRecord('B', '10'), streamRecord('A', '3'), streamRecord('B', '11')];
    const processed: string[] = [];
    const handler = traceRecordBatch(streamSource, async (record) => {
      processed.push(record.sequenceNumber);
      if (record.sequenceNumber === '2') throw new Error('cannot process');
    });

    // Act
    const result = await handler({ Records: records }, lambdaContext());

    // Assert: only "2" reported (the source retries 2 and 3 from there); "3" never ran; shard B ran to its end
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    expect(processed).toEqual(['1', '2', '10', '11']);
    const outcomes = capture.spans().map((span) => [span.attributes['messaging.message.id'], span.status.code]);
    expect(outcomes).toEqual([
      ['1', SpanStatusCode.UNSET],
      ['2', SpanStatusCode.ERROR],
      ['10', SpanStatusCode.UNSET],
      ['11', SpanStatusCode.UNSET],
    ]);
  });

  it('runs shards side by side under the concurrency option, each shard one record at a time, in order', async () => {
    // Arrange: shard A waits on its first record while shard B goes on
    const held = gate();
    const records = [streamRecord('A', '1'), streamRecord('A', '2'), streamRecord('B', '10'), streamRecord('B', '11')];
    const order: string[] = [];
    const handler = traceRecordBatch(
      streamSource,
      async (record) => {
        order.push(`start ${record.sequenceNumber}`);
        if (record.sequenceNumber === '1') await held.opened;
        if (record.sequenceNumber === '11') held.open();
        order.push(`end ${record.sequenceNumber}`);
      },
      { concurrency: 4 },
    );

    // Act
    const result = await handler({ Records: records }, lambdaContext());

    // Assert: B ran both its records while A's first was held; A's second started only after its first ended
    expect(result).toEqual({ batchItemFailures: [] });
    expect(order).toEqual(['start 1', 'start 10', 'end 10', 'start 11', 'end 11', 'end 1', 'start 2', 'end 2']);
  });

  it("gives each record a span continuing its own producer's trace", async () => {
    const seen: string[] = [];
    const handler = traceRecordBatch(streamSource, async () => {
      seen.push(currentTracePayload()?.traceId ?? 'none');
    });

    await handler({ Records: [streamRecord('A', '1', '1'), streamRecord('A', '2', '2')] }, lambdaContext());

    expect(seen).toEqual(['1'.repeat(32), '2'.repeat(32)]);
    expect(capture.spans().map((span) => [span.name, span.parentSpanContext?.traceId, span.attributes['traced_lambda.parent.source']])).toEqual([
      ['process clicks', '1'.repeat(32), 'trace-payload'],
      ['process clicks', '2'.repeat(32), 'trace-payload'],
    ]);
  });
});
