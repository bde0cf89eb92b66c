import { context, ROOT_CONTEXT, SpanKind, type Attributes, type Link } from '@opentelemetry/api';
import type { Context as LambdaContext, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { InboundPolicy } from '../propagation/inbound-policy';
import { entryContext } from '../invocation/entry-context';
import { beginInvocation, endInvocation, startEntrySpan, startTelemetrySafely, type LambdaFn, type StartedInvocation } from '../invocation/invocation';
import { invocationAttributes, takeColdStart } from '../invocation/invocation-attributes';
import { endSpan, recordFailure } from '../invocation/span-outcome';
import { ATTR_FAAS_COLDSTART, ATTR_MESSAGING_BATCH_MESSAGE_COUNT, ATTR_MESSAGING_DESTINATION_NAME, ATTR_MESSAGING_MESSAGE_ID, FAAS_TRIGGER } from '../semconv';
import type { Telemetry } from '../telemetry';
import { addSqsReceiveCount, addSqsSpanAttributes, extractParentFromSqsRecord, sqsSpanName } from '../carriers/sqs';
import type { ParentLookup } from '../propagation/parent-lookup';

/** Handles one SQS record; a rejection marks that record failed (it is retried), the others still succeed. */
export type SqsRecordHandler = (record: SQSRecord, context: LambdaContext) => Promise<void>;

/**
 * How the spans of a batch relate to the messages' producers:
 * - `parent` (default): each record's span is the child of its producer, one trace end to end per message;
 * - `links`: each record's span starts a new trace, linked to its producer (the messaging conventions' form);
 * - `both`: one batch span linked to every producer, with a child span per record, each linked to its producer.
 */
export type SqsBatchStrategy = 'parent' | 'links' | 'both';

export interface SqsHandlerOptions {
  strategy?: SqsBatchStrategy;
  /**
   * How many records of a standard queue's batch are processed at once (default 1: one after another).
   * FIFO queues are always processed in order, one at a time.
   */
  concurrency?: number;
  /** What to do with the producers' trace contexts (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/**
 * Wraps a per-record SQS handler into a batch handler for an event source mapping with
 * `ReportBatchItemFailures`: one CONSUMER `process <queue>` span per record, and every failed record reported in
 * `batchItemFailures` with its span marked ERROR. Records run one after another, or `concurrency` at a time on a
 * standard queue, each in its own context. On a FIFO queue processing stops at the first failure and the rest of
 * the batch is reported failed too, so that order is kept. Spans are flushed before the function returns.
 */
export function traceSqsRecords(handleRecord: SqsRecordHandler, options: SqsHandlerOptions = {}): LambdaFn<SQSEvent, SQSBatchResponse> {
  const { strategy, inbound, concurrency } = {
    strategy: 'parent' as SqsBatchStrategy,
    inbound: 'continue' as InboundPolicy,
    concurrency: 1,
    ...options,
  };
  return async (event, lambdaContext) => {
    const begun = beginInvocation(lambdaContext);
    const records = Array.isArray(event?.Records) ? event.Records : [];
    const telemetry = begun?.telemetry;
    const coldStart = startTelemetrySafely(() => takeColdStart(telemetry?.config.lambda.initializationType)) ?? false;
    // Extraction never throws: a record it cannot read gives no parent.
    const lookups = records.map(extractParentFromSqsRecord);
    const batch =
      telemetry && strategy === 'both' ? startTelemetrySafely(() => startBatchSpan(telemetry, records, lookups, lambdaContext, coldStart, inbound)) : undefined;

    // One attributes object for every record span of this invocation: the SDK copies it when a span starts.
    const recordAttributes = startTelemetrySafely(() =>
      addSqsSpanAttributes(invocationAttributes(lambdaContext, FAAS_TRIGGER.pubsub, false), 'process', undefined),
    );
    const startRecord = (index: number): RunningRecord => {
      const record = records[index];
      const started =
        telemetry && recordAttributes
          ? startTelemetrySafely(() =>
              startRecordSpan(telemetry, record, lookups[index], recordAttributes, {
                coldStart: coldStart && index === 0 && !batch,
                inbound: strategy === 'parent' ? inbound : inbound === 'ignore' ? 'ignore' : 'link',
                batch,
              }),
            )
          : undefined;
      return { record, started, pending: runHandler(handleRecord, record, lambdaContext, started) };
    };

    try {
      const fifo = records.some(isFifo);
      const failed = fifo || concurrency <= 1 ? await inOrder(records.length, startRecord, fifo) : await atOnce(records.length, concurrency, startRecord);
      // A record with no id (never from AWS) is reported with an empty one: Lambda then retries the whole batch.
      return { batchItemFailures: failed.map((index) => ({ itemIdentifier: records[index]?.messageId ?? '' })) };
    } finally {
      if (batch) endSpan(batch.span);
      await endInvocation(begun, lambdaContext);
    }
  };
}

/** A record whose handler is running: its promise, and its span when there is one. */
interface RunningRecord {
  record: SQSRecord;
  started: StartedInvocation | undefined;
  pending: Promise<unknown>;
}

/**
 * Runs records one after another; returns the indexes of the failed ones. With `stopAtFailure` (FIFO), the
 * first failure ends the batch and every record from there on is reported, so that order is kept. The loop awaits
 * each handler's promise itself: one await per record, as a hand-written loop would have.
 */
async function inOrder(count: number, start: (index: number) => RunningRecord, stopAtFailure: boolean): Promise<number[]> {
  const failed: number[] = [];
  for (let index = 0; index < count; index++) {
    const running = start(index);
    try {
      await running.pending;
      continue;
    } catch (error) {
      recordFailed(running, error);
    } finally {
      if (running.started) endSpan(running.started.span);
    }
    if (!stopAtFailure) {
      failed.push(index);
      continue;
    }
    for (let rest = index; rest < count; rest++) failed.push(rest);
    break;
  }
  return failed;
}

/** Runs up to `limit` records at a time; returns the indexes of the failed ones, in record order. */
async function atOnce(count: number, limit: number, start: (index: number) => RunningRecord): Promise<number[]> {
  const failed: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      if (await settle(start(index))) failed.push(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return failed.sort((a, b) => a - b);
}

/** Waits for a record's handler and ends its span; returns whether it failed. */
async function settle(running: RunningRecord): Promise<boolean> {
  try {
    await running.pending;
    return false;
  } catch (error) {
    recordFailed(running, error);
    return true;
  } finally {
    if (running.started) endSpan(running.started.span);
  }
}

function startBatchSpan(
  telemetry: Telemetry,
  records: SQSRecord[],
  lookups: (ParentLookup | undefined)[],
  lambdaContext: LambdaContext,
  coldStart: boolean,
  inbound: InboundPolicy,
): StartedInvocation {
  const queue = queueNameFromArn(records[0]?.eventSourceARN);
  const links: Link[] = inbound === 'ignore' ? [] : lookups.flatMap((lookup) => (lookup?.parent ? [{ context: lookup.parent }] : []));
  const attributes = addSqsSpanAttributes(invocationAttributes(lambdaContext, FAAS_TRIGGER.pubsub, coldStart), 'process', queue);
  attributes[ATTR_MESSAGING_BATCH_MESSAGE_COUNT] = records.length;
  return startEntrySpan(telemetry, {
    name: sqsSpanName('process', queue),
    kind: SpanKind.CONSUMER,
    attributes,
    lookup: { context: ROOT_CONTEXT, source: 'none' },
    inbound: 'ignore',
    links,
  });
}

function startRecordSpan(
  telemetry: Telemetry,
  record: SQSRecord,
  lookup: ParentLookup | undefined,
  attributes: Attributes,
  placement: { coldStart: boolean; inbound: InboundPolicy; batch?: StartedInvocation },
): StartedInvocation {
  const queue = queueNameFromArn(record.eventSourceARN);
  attributes[ATTR_FAAS_COLDSTART] = placement.coldStart;
  attributes[ATTR_MESSAGING_MESSAGE_ID] = record.messageId;
  addSqsReceiveCount(attributes, record);
  if (queue) attributes[ATTR_MESSAGING_DESTINATION_NAME] = queue;
  else delete attributes[ATTR_MESSAGING_DESTINATION_NAME];
  return startEntrySpan(telemetry, {
    name: sqsSpanName('process', queue),
    kind: SpanKind.CONSUMER,
    attributes,
    lookup: lookup ?? { context: ROOT_CONTEXT, source: 'none' },
    inbound: placement.inbound,
    parentContext: placement.batch ? entryContext(placement.batch.parentContext, placement.batch.span) : undefined,
  });
}

/**
 * Calls the record's handler, in the record's span when there is one (the handler's promise; a synchronous throw
 * becomes a rejection). No closure per record: context.with passes the arguments on.
 */
function runHandler(handleRecord: SqsRecordHandler, record: SQSRecord, lambdaContext: LambdaContext, started: StartedInvocation | undefined): Promise<unknown> {
  try {
    return started
      ? context.with(entryContext(started.parentContext, started.span), handleRecord, undefined, record, lambdaContext)
      : handleRecord(record, lambdaContext);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A record's handler failed: its span is marked failed and, since the error stops here, the log says so. */
function recordFailed({ record, started }: RunningRecord, error: unknown): void {
  if (started?.span.isRecording()) recordFailure(started.span, error);
  // The error stops here (the record is reported for retry), so make it visible in the function's log.
  console.error(`SQS message ${record?.messageId} failed and is reported in batchItemFailures:`, error);
}

let lastArn: string | undefined;
let lastQueue: string | undefined;

/** arn:aws:sqs:region:account:queue-name → queue-name (the last answer kept: a batch comes from one queue). */
function queueNameFromArn(arn: string | undefined): string | undefined {
  if (arn !== lastArn) {
    lastArn = arn;
    lastQueue = typeof arn === 'string' ? arn.split(':')[5] || undefined : undefined;
  }
  return lastQueue;
}

/** Read from each record as it came: a record that is not an object, or an ARN that is not a string, is not FIFO. */
function isFifo(record: SQSRecord | null | undefined): boolean {
  const arn: unknown = record?.eventSourceARN;
  return typeof arn === 'string' && arn.endsWith('.fifo');
}
