// The lifecycle of a batch trigger (SQS, SNS): a CONSUMER span per record, each continuing its own producer's trace
// (or linked to it), the records scheduled as the source orders them, failures reported as the source defines them,
// one end of invocation for the whole batch. Each trigger is a description (RecordBatchSource) this runs.
import { context, SpanKind, type Attributes, type Link } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import type { InboundPolicy } from '../propagation/inbound-policy';
import { NOT_FOUND, type ParentLookup } from '../propagation/parent-lookup';
import { ATTR_FAAS_COLDSTART, ATTR_MESSAGING_BATCH_MESSAGE_COUNT, FAAS_TRIGGER } from '../semconv';
import { entryContext } from './entry-context';
import { beginInvocation, endInvocation, startEntrySpan, startTelemetrySafely, type LambdaFn, type StartedInvocation } from './invocation';
import { startAheadOfFirstInvocation, type Telemetry } from '../telemetry';
import { invocationAttributes, takeColdStart } from './invocation-attributes';
import { scheduleRecords, type AfterFailure } from './record-scheduler';
import { endSpan, recordFailure } from './span-outcome';

/**
 * What differs between batch triggers, each part from the hop's carrier file: where a record's parent is, its
 * span's name and attributes, the order its records keep, and how a failed record is reported. Written as a
 * module-level constant of functions and literals only: a property read in it (`FAAS_TRIGGER.pubsub`) would keep
 * it, and its whole carrier, in bundles that never use it.
 */
export interface RecordBatchSource<R> {
  /** The spans' `faas.trigger` (default `pubsub`; `datasource` for a database's stream). */
  trigger?: string;
  /** Where the record's producer put its trace context. */
  extractParent(record: R): ParentLookup;
  /** The queue, topic or stream the record came from. */
  destination(record: R): string | undefined;
  /** The span name for records from `destination`. */
  spanName(destination: string | undefined): string;
  /** Adds the attributes every span of the source carries (`messaging.*`) to `attributes`. */
  addSpanAttributes(attributes: Attributes, destination: string | undefined): Attributes;
  /**
   * Sets the record's own attributes (its destination, id…) on `attributes`, which every record's span shares: each
   * set or removed.
   */
  setRecordAttributes(attributes: Attributes, record: R, destination: string | undefined): void;
  /** The ordering key of each record when the batch keeps an order (FIFO message group, shard); undefined: records are independent. */
  orderingKeyOf?(records: readonly R[]): ((record: R) => string) | undefined;
  /**
   * How a failed record is reported in `batchItemFailures` (`name` opens the log line); without, the first failure
   * ends the batch and is rethrown unchanged.
   */
  failures?: { name: string; identifier(record: R): string; afterFailure: AfterFailure };
}

/** Handles one record; a rejection marks that record failed. */
type RecordHandler<R> = (record: R, context: LambdaContext) => Promise<void>;

/**
 * How the spans of a batch relate to the messages' producers:
 * - `parent` (default): each record's span is the child of its producer, one trace end to end per message;
 * - `links`: each record's span starts a new trace, linked to its producer (the messaging conventions' form);
 * - `both`: one batch span linked to every producer, with a child span per record, each linked to its producer.
 */
export type BatchStrategy = 'parent' | 'links' | 'both';

export interface RecordBatchOptions {
  strategy?: BatchStrategy;
  /** How many records run at once (default 1: one after another); records of one ordering key always in order. */
  concurrency?: number;
  /** What to do with the producers' trace contexts (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/** The answer of a source that reports failures: what Lambda's partial batch response reads. */
interface BatchItemFailures {
  batchItemFailures: { itemIdentifier: string }[];
}

/** A started record: its span, or undefined when it runs untraced. */
type RecordSpans = (StartedInvocation | undefined)[];

/**
 * Wraps a per-record handler into a batch handler running `source`'s lifecycle. Spans are exported once, when the
 * batch has ended (after the response through the extension, before it otherwise).
 */
export function traceRecordBatch<R>(
  source: RecordBatchSource<R>,
  handleRecord: RecordHandler<R>,
  options: RecordBatchOptions = {},
): LambdaFn<{ Records?: R[] }, BatchItemFailures | undefined> {
  const { strategy, inbound, concurrency } = { strategy: 'parent' as BatchStrategy, inbound: 'continue' as InboundPolicy, concurrency: 1, ...options };
  const recordInbound: InboundPolicy = strategy === 'parent' ? inbound : inbound === 'ignore' ? 'ignore' : 'link';
  const { failures } = source;
  startAheadOfFirstInvocation();
  return async (event, lambdaContext) => {
    const begun = beginInvocation(lambdaContext);
    const records = Array.isArray(event?.Records) ? event.Records : [];
    const telemetry = begun?.telemetry;
    const coldStart = startTelemetrySafely(() => takeColdStart(telemetry?.config.lambda.initializationType)) ?? false;
    // Extraction never throws: a record it cannot read gives no parent.
    const lookups = records.map((record) => source.extractParent(record));
    const batch =
      telemetry && strategy === 'both'
        ? startTelemetrySafely(() => startBatchSpan(telemetry, source, records, lookups, lambdaContext, coldStart, inbound))
        : undefined;
    // One attributes object for every record span of this invocation: the SDK copies it when a span starts.
    const attributes = startTelemetrySafely(() =>
      source.addSpanAttributes(invocationAttributes(lambdaContext, source.trigger ?? FAAS_TRIGGER.pubsub, false), undefined),
    );
    const spans: RecordSpans = [];
    let thrown: { error: unknown } | undefined;
    const orderingKey = failures ? source.orderingKeyOf?.(records) : undefined;

    try {
      const reported = await scheduleRecords(
        records.length,
        {
          // A source that reports nothing runs its records as one ordered lane, stopped by a failure.
          concurrency: failures ? concurrency : 1,
          keyOf: failures ? orderingKey && ((index) => orderingKey(records[index])) : () => '',
          afterFailure: failures?.afterFailure ?? 'retry-from',
        },
        {
          start(index) {
            const record = records[index];
            const started =
              telemetry && attributes
                ? startTelemetrySafely(() =>
                    startRecordSpan(telemetry, source, record, lookups[index], attributes, coldStart && index === 0 && !batch, recordInbound, batch),
                  )
                : undefined;
            spans[index] = started;
            return runHandler(handleRecord, record, lambdaContext, started);
          },
          settled(index, failed, error) {
            const started = spans[index];
            if (failed) {
              if (started?.span.isRecording()) recordFailure(started.span, error);
              // The error stops here (the record is reported for retry), so make it visible in the function's log.
              if (failures) console.error(`${failures.name} ${failures.identifier(records[index])} failed and is reported in batchItemFailures:`, error);
              else thrown = { error };
            }
            if (started) endSpan(started.span);
          },
        },
      );
      if (!failures) {
        if (thrown) throw thrown.error;
        return undefined;
      }
      return { batchItemFailures: reported.map((index) => ({ itemIdentifier: failures.identifier(records[index]) })) };
    } finally {
      if (batch) endSpan(batch.span);
      await endInvocation(begun, lambdaContext);
    }
  };
}

function startBatchSpan<R>(
  telemetry: Telemetry,
  source: RecordBatchSource<R>,
  records: R[],
  lookups: ParentLookup[],
  lambdaContext: LambdaContext,
  coldStart: boolean,
  inbound: InboundPolicy,
): StartedInvocation {
  const destination = records.length > 0 ? source.destination(records[0]) : undefined;
  const links: Link[] = inbound === 'ignore' ? [] : lookups.flatMap((lookup) => (lookup.parent ? [{ context: lookup.parent }] : []));
  const attributes = source.addSpanAttributes(invocationAttributes(lambdaContext, source.trigger ?? FAAS_TRIGGER.pubsub, coldStart), destination);
  attributes[ATTR_MESSAGING_BATCH_MESSAGE_COUNT] = records.length;
  return startEntrySpan(telemetry, {
    name: source.spanName(destination),
    kind: SpanKind.CONSUMER,
    attributes,
    lookup: NOT_FOUND,
    inbound: 'ignore',
    links,
  });
}

function startRecordSpan<R>(
  telemetry: Telemetry,
  source: RecordBatchSource<R>,
  record: R,
  lookup: ParentLookup,
  attributes: Attributes,
  coldStart: boolean,
  inbound: InboundPolicy,
  batch: StartedInvocation | undefined,
): StartedInvocation {
  const destination = source.destination(record);
  attributes[ATTR_FAAS_COLDSTART] = coldStart;
  source.setRecordAttributes(attributes, record, destination);
  return startEntrySpan(telemetry, {
    name: source.spanName(destination),
    kind: SpanKind.CONSUMER,
    attributes,
    lookup,
    inbound,
    parentContext: batch ? entryContext(batch.parentContext, batch.span) : undefined,
  });
}

/**
 * Calls the record's handler, in the record's span when there is one (the handler's promise; a synchronous throw
 * becomes a rejection). No closure per record: context.with passes the arguments on.
 */
function runHandler<R>(handleRecord: RecordHandler<R>, record: R, lambdaContext: LambdaContext, started: StartedInvocation | undefined): Promise<unknown> {
  try {
    return started
      ? context.with(entryContext(started.parentContext, started.span), handleRecord, undefined, record, lambdaContext)
      : handleRecord(record, lambdaContext);
  } catch (error) {
    return Promise.reject(error);
  }
}
