import { propagation, ROOT_CONTEXT, trace, type Context, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import type { Context as LambdaContext, EventBridgeEvent, SNSEventRecord, SQSRecord } from 'aws-lambda';
import { httpEventHeadersGetter, type HttpEvent } from './carriers/http-headers';
import { envelopeFieldsGetter, type TraceFields } from './carriers/invoke-payload-envelope';
import { clientContextGetter } from './carriers/lambda-client-context';
import { snsAttributesGetter, snsEnvelopeOf } from './carriers/sns-message-attributes';
import { sqsRecordAttributesGetter } from './carriers/sqs-message-attributes';
import { extractXRayTraceHeader } from './carriers/xray-trace-header';

/** Where a handler found its parent trace context. */
export const PARENT_SOURCE = {
  httpHeaders: 'http-headers',
  sqsMessageAttributes: 'sqs-message-attributes',
  sqsSnsEnvelope: 'sqs-sns-envelope',
  sqsAwsTraceHeader: 'sqs-aws-trace-header',
  snsMessageAttributes: 'sns-message-attributes',
  lambdaClientContext: 'lambda-client-context',
  invokePayloadEnvelope: 'invoke-payload-envelope',
  eventBridgeDetail: 'eventbridge-detail',
  payload: 'trace-payload',
  none: 'none',
} as const;
export type ParentSource = (typeof PARENT_SOURCE)[keyof typeof PARENT_SOURCE];

/** The outcome of looking for a parent: the context to start the span in, and why. */
export interface ParentLookup {
  /** Holds the remote parent when one was found; otherwise the root context (the span starts a new trace). */
  context: Context;
  source: ParentSource;
  parent?: SpanContext;
}

const NOT_FOUND: ParentLookup = { context: ROOT_CONTEXT, source: PARENT_SOURCE.none };

/** API Gateway REST (`multiValueHeaders`, then `headers`), HTTP API and ALB events; header names in any case. */
export function extractParentFromHttpEvent(event: HttpEvent): ParentLookup {
  return extractWith(event, httpEventHeadersGetter, PARENT_SOURCE.httpHeaders);
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

/** An SNS-triggered function's record: the message attributes. */
export function extractParentFromSnsRecord(record: SNSEventRecord): ParentLookup {
  return extractWith(record?.Sns?.MessageAttributes, snsAttributesGetter, PARENT_SOURCE.snsMessageAttributes);
}

/**
 * A direct invoke: `context.clientContext.custom` (synchronous invokes), then the payload envelope's fields
 * (asynchronous invokes, whose client context AWS drops).
 */
export function extractParentFromInvoke(lambdaContext: LambdaContext, envelopeFields?: TraceFields): ParentLookup {
  const fromClientContext = extractWith(lambdaContext?.clientContext, clientContextGetter, PARENT_SOURCE.lambdaClientContext);
  if (fromClientContext.parent || !envelopeFields) return fromClientContext;
  const fromEnvelope = extractWith(envelopeFields, envelopeFieldsGetter, PARENT_SOURCE.invokePayloadEnvelope);
  return fromEnvelope.parent ? fromEnvelope : fromClientContext;
}

/** An EventBridge event whose producer put `traceparent`/`tracestate` at the top level of `detail`. */
export function extractParentFromEventBridgeEvent(event: EventBridgeEvent<string, unknown>): ParentLookup {
  const detail = event?.detail;
  if (detail === null || typeof detail !== 'object') return NOT_FOUND;
  return extractWith(detail as TraceFields, envelopeFieldsGetter, PARENT_SOURCE.eventBridgeDetail);
}

/**
 * Runs the registered propagator over one carrier (ours reads `tracestate` by the current W3C rules).
 * Never throws: an unreadable or malformed carrier gives no parent, and the span starts a new root.
 */
function extractWith<C>(carrier: C, getter: TextMapGetter<C>, source: ParentSource): ParentLookup {
  return lookupFrom(() => propagation.extract(ROOT_CONTEXT, carrier, getter), source);
}

function lookupFrom(extract: () => Context, source: ParentSource): ParentLookup {
  try {
    const context = extract();
    // The propagators set a span context only once they have validated it.
    const parent = trace.getSpanContext(context);
    if (parent) return { context, source, parent };
    // No parent, but keep whatever else the propagator put in the context.
    return { context, source: PARENT_SOURCE.none };
  } catch {
    // A new root: the event's shape was not what its type promised.
    return NOT_FOUND;
  }
}
