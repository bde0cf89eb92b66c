import { propagation, ROOT_CONTEXT, trace, type Context, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import type { Context as LambdaContext, EventBridgeEvent, SNSEventRecord, SQSRecord } from 'aws-lambda';
import { httpEventHeadersGetter, type HttpEvent } from './carriers/http-headers';
import { envelopeFieldsGetter, type TraceFields } from './carriers/invoke-payload-envelope';
import { clientContextGetter } from './carriers/lambda-client-context';
import { snsAttributesGetter, snsEnvelopeOf } from './carriers/sns-message-attributes';
import { sqsRecordAttributesGetter } from './carriers/sqs-message-attributes';
import { isValidTraceState } from './carriers/trace-state';
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
  return extractWith(() => event, httpEventHeadersGetter, PARENT_SOURCE.httpHeaders);
}

/**
 * In this order: W3C `traceparent`/`tracestate` message attributes (what our producers write, and what SNS
 * writes with raw message delivery); the message attributes of an SNS envelope in the body (SNS → SQS without
 * raw delivery); the `AWSTraceHeader` system attribute (X-Ray format: our producers' fallback when a message has
 * no room for more attributes, and what X-Ray-traced producers set).
 */
export function extractParentFromSqsRecord(record: SQSRecord): ParentLookup {
  return firstFound(
    () => extractWith(() => record.messageAttributes, sqsRecordAttributesGetter, PARENT_SOURCE.sqsMessageAttributes),
    () => {
      const envelope = snsEnvelopeOf(record.body);
      return envelope ? extractWith(() => envelope.attributes, snsAttributesGetter, PARENT_SOURCE.sqsSnsEnvelope) : NOT_FOUND;
    },
    () => {
      const header = record.attributes?.AWSTraceHeader;
      return typeof header === 'string' && header !== ''
        ? lookupFrom(() => extractXRayTraceHeader(header), PARENT_SOURCE.sqsAwsTraceHeader)
        : NOT_FOUND;
    },
  );
}

/** An SNS-triggered function's record: the message attributes. */
export function extractParentFromSnsRecord(record: SNSEventRecord): ParentLookup {
  return extractWith(() => record.Sns?.MessageAttributes as never, snsAttributesGetter, PARENT_SOURCE.snsMessageAttributes);
}

/**
 * A direct invoke: `context.clientContext.custom` (synchronous invokes), then the payload envelope's fields
 * (asynchronous invokes, whose client context AWS drops).
 */
export function extractParentFromInvoke(lambdaContext: LambdaContext, envelopeFields?: TraceFields): ParentLookup {
  return firstFound(
    () => extractWith(() => lambdaContext.clientContext, clientContextGetter, PARENT_SOURCE.lambdaClientContext),
    () =>
      envelopeFields
        ? extractWith(() => envelopeFields, envelopeFieldsGetter, PARENT_SOURCE.invokePayloadEnvelope)
        : NOT_FOUND,
  );
}

/** An EventBridge event whose producer put `traceparent`/`tracestate` at the top level of `detail`. */
export function extractParentFromEventBridgeEvent(event: EventBridgeEvent<string, unknown>): ParentLookup {
  const detail = event?.detail;
  if (detail === null || typeof detail !== 'object') return NOT_FOUND;
  return extractWith(() => detail as TraceFields, envelopeFieldsGetter, PARENT_SOURCE.eventBridgeDetail);
}

function firstFound(...lookups: (() => ParentLookup)[]): ParentLookup {
  let fallback = NOT_FOUND;
  for (const lookup of lookups) {
    const found = lookup();
    if (found.parent) return found;
    if (fallback === NOT_FOUND) fallback = found;
  }
  return fallback;
}

/**
 * Runs the registered propagator over one carrier, then drops a `tracestate` that breaks the W3C rules.
 * Never throws: an unreadable or malformed carrier gives no parent, and the span starts a new root.
 */
export function extractWith<C>(readCarrier: () => C, getter: TextMapGetter<C>, source: ParentSource): ParentLookup {
  return lookupFrom(() => {
    const carrier = readCarrier();
    const extracted = propagation.extract(ROOT_CONTEXT, carrier, getter);
    const parent = trace.getSpanContext(extracted);
    const rawTraceState = getter.get(carrier, 'tracestate');
    const raw = Array.isArray(rawTraceState) ? rawTraceState.join(',') : rawTraceState;
    if (!parent?.traceState || raw === undefined || isValidTraceState(raw)) return extracted;
    return trace.setSpanContext(extracted, { ...parent, traceState: undefined });
  }, source);
}

function lookupFrom(extract: () => Context, source: ParentSource): ParentLookup {
  try {
    const context = extract();
    // The propagators set a span context only once they have validated it.
    const parent = trace.getSpanContext(context);
    if (parent) return { context, source, parent };
    // No parent, but keep whatever else was extracted (baggage).
    return { context, source: PARENT_SOURCE.none };
  } catch {
    // A new root: the event's shape was not what its type promised.
    return NOT_FOUND;
  }
}
