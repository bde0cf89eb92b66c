// The SQS hop, both sides: the trace context written into a message (attributes, or AWSTraceHeader past SQS's
// limit) and read back from a received record, and the names and attributes of its spans.
import { diag, propagation, type Attributes, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import type { MessageAttributeValue, MessageSystemAttributeValue } from '@aws-sdk/client-sqs';
import type { SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { extractWith, lookupFrom, NOT_FOUND, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_AWS_SQS,
} from '../semconv';
import { snsAttributesGetter, snsEnvelopeOf } from './sns-message-attributes';
import { extractXRayTraceHeader, formatXRayTraceHeader } from './xray-trace-header';

/** SQS allows at most this many message attributes on one message. */
const SQS_MAX_MESSAGE_ATTRIBUTES = 10;

/** Reads string message attributes of a received SQS record (`record.messageAttributes`). */
const sqsRecordAttributesGetter: TextMapGetter<SQSMessageAttributes | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get(carrier, key) {
    const attribute = findAttribute(carrier, key);
    if (!attribute || typeof attribute.stringValue !== 'string') return undefined;
    return attribute.dataType === 'String' || attribute.dataType?.startsWith('String.') ? attribute.stringValue : undefined;
  },
};

/** Attribute names are case-sensitive in SQS; a producer that wrote `TraceParent` is still understood. */
function findAttribute(carrier: SQSMessageAttributes | undefined, key: string) {
  if (!carrier) return undefined;
  const exact = carrier[key];
  if (exact) return exact;
  for (const name in carrier) {
    if (name.length === key.length && name.toLowerCase() === key) return carrier[name];
  }
  return undefined;
}

/** Writes string message attributes into a SendMessage / SendMessageBatch entry's `MessageAttributes`. */
const sqsSendAttributesSetter: TextMapSetter<Record<string, MessageAttributeValue>> = {
  set(carrier, key, value) {
    carrier[key] = { DataType: 'String', StringValue: value };
  },
};

/** The part of a SendMessage (or SendMessageBatch entry) input that carries a trace context. */
interface SqsMessageCarrier {
  MessageAttributes?: Record<string, MessageAttributeValue>;
  MessageSystemAttributes?: Record<string, MessageSystemAttributeValue>;
}

let reportedAttributeLimit = false;

/**
 * Returns a copy of a message input that carries the trace context of `ctx`: as `traceparent`/`tracestate`
 * message attributes (the caller's attributes kept), or, when those would push the message past SQS's limit
 * of 10 attributes, in the `AWSTraceHeader` system attribute, which does not count toward it (a `Lineage`
 * field already there is kept). The send never fails because of tracing.
 */
export function injectIntoSqsMessage<T extends SqsMessageCarrier>(input: T, ctx: Context): T {
  const ours: Record<string, MessageAttributeValue> = {};
  propagation.inject(ctx, ours, sqsSendAttributesSetter);
  if (Object.keys(ours).length === 0) return input;

  const existing = input.MessageAttributes ?? {};
  const names = new Set([...Object.keys(existing), ...Object.keys(ours)]);
  if (names.size <= SQS_MAX_MESSAGE_ATTRIBUTES) {
    return { ...input, MessageAttributes: { ...existing, ...ours } };
  }

  if (!reportedAttributeLimit) {
    reportedAttributeLimit = true;
    diag.info('traced-lambda: a message has too many attributes for the trace context; using the AWSTraceHeader system attribute.');
  }
  const previous = input.MessageSystemAttributes?.AWSTraceHeader?.StringValue;
  const header = formatXRayTraceHeader(ctx, previous);
  if (!header) return input;
  return {
    ...input,
    MessageSystemAttributes: {
      ...input.MessageSystemAttributes,
      AWSTraceHeader: { DataType: 'String', StringValue: header },
    },
  };
}

/**
 * In this order: W3C `traceparent`/`tracestate` message attributes (what our producers write, and what SNS
 * writes with raw message delivery); the message attributes of an SNS envelope in the body (SNS → SQS without
 * raw delivery); the `AWSTraceHeader` system attribute (X-Ray format: our producers' fallback when a message has
 * no room for more attributes, and what X-Ray-traced producers set).
 */
export function extractParentFromSqsRecord(record: SQSRecord): ParentLookup {
  // The common case first and without closures: this runs for every record of every batch.
  const fromAttributes = extractWith(record?.messageAttributes, sqsRecordAttributesGetter, PARENT_SOURCE.sqsMessageAttributes);
  if (fromAttributes.parent) return fromAttributes;
  const envelope = snsEnvelopeOf(record?.body);
  const fromEnvelope = envelope ? extractWith(envelope.attributes, snsAttributesGetter, PARENT_SOURCE.sqsSnsEnvelope) : NOT_FOUND;
  if (fromEnvelope.parent) return fromEnvelope;
  const header = record?.attributes?.AWSTraceHeader;
  if (typeof header === 'string' && header !== '') {
    const fromHeader = lookupFrom(() => extractXRayTraceHeader(header), PARENT_SOURCE.sqsAwsTraceHeader);
    if (fromHeader.parent) return fromHeader;
  }
  return fromAttributes;
}

/** Adds the messaging attributes every SQS span carries, producer or consumer side, to `attributes`. */
export function addSqsSpanAttributes(attributes: Attributes, operation: 'send' | 'create' | 'process', queue: string | undefined): Attributes {
  attributes[ATTR_MESSAGING_SYSTEM] = MESSAGING_SYSTEM_AWS_SQS;
  attributes[ATTR_MESSAGING_OPERATION_TYPE] = operation;
  attributes[ATTR_MESSAGING_OPERATION_NAME] = operation;
  if (queue) attributes[ATTR_MESSAGING_DESTINATION_NAME] = queue;
  return attributes;
}

/**
 * Which receive of its message a record is (SQS's `ApproximateReceiveCount`: 1 the first time, 2 on the first
 * retry, …). The messaging conventions (v1.44.0) have no attribute for SQS's count (only per-system ones, such as
 * Service Bus's delivery count), so it is the kit's own, outside their namespaces.
 */
export const ATTR_SQS_RECEIVE_COUNT = 'traced_lambda.sqs.receive_count';

/** Sets a received record's own attributes on its span's: its queue, message id and receive count. */
export function setSqsRecordAttributes(attributes: Attributes, record: SQSRecord, queue: string | undefined): void {
  if (queue) attributes[ATTR_MESSAGING_DESTINATION_NAME] = queue;
  else delete attributes[ATTR_MESSAGING_DESTINATION_NAME];
  attributes[ATTR_MESSAGING_MESSAGE_ID] = record?.messageId;
  addSqsReceiveCount(attributes, record);
}

/** Sets the record's receive count on its span's attributes, or removes a stale one when the record has none. */
export function addSqsReceiveCount(attributes: Attributes, record: SQSRecord): void {
  const count = Number(record?.attributes?.ApproximateReceiveCount);
  if (Number.isInteger(count) && count > 0) attributes[ATTR_SQS_RECEIVE_COUNT] = count;
  else delete attributes[ATTR_SQS_RECEIVE_COUNT];
}

/** The span name the messaging conventions give: `{operation} {destination}`. */
export function sqsSpanName(operation: 'send' | 'create' | 'process', queue: string | undefined): string {
  return queue ? `${operation} ${queue}` : operation;
}

let lastArn: unknown;
let lastQueue: string | undefined;

/** A received record's queue: arn:aws:sqs:region:account:queue-name → queue-name (the last answer kept: a batch comes from one queue). */
export function sqsQueueOf(record: SQSRecord): string | undefined {
  const arn: unknown = record?.eventSourceARN;
  if (arn !== lastArn) {
    lastArn = arn;
    lastQueue = typeof arn === 'string' ? arn.split(':')[5] || undefined : undefined;
  }
  return lastQueue;
}
