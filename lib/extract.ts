import { propagation, ROOT_CONTEXT, trace, type Context, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import type { Context as LambdaContext, SQSRecord } from 'aws-lambda';
import { clientContextGetter } from './carriers/lambda-client-context';
import { collectHttpHeaders, httpHeadersGetter, type HttpEvent } from './carriers/http-headers';
import { sqsRecordAttributesGetter } from './carriers/sqs-message-attributes';
import { extractXRayTraceHeader } from './carriers/xray-trace-header';

/** Where a handler found its parent trace context. */
export const PARENT_SOURCE = {
  httpHeaders: 'http-headers',
  sqsMessageAttributes: 'sqs-message-attributes',
  sqsAwsTraceHeader: 'sqs-aws-trace-header',
  lambdaClientContext: 'lambda-client-context',
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

export function extractParentFromHttpEvent(event: HttpEvent): ParentLookup {
  return extractWith(() => collectHttpHeaders(event), httpHeadersGetter, PARENT_SOURCE.httpHeaders);
}

/**
 * W3C `traceparent`/`tracestate` message attributes first (what our producers write); then the `AWSTraceHeader`
 * system attribute, which producers use when a message has no room for more attributes, and which X-Ray-traced
 * producers set.
 */
export function extractParentFromSqsRecord(record: SQSRecord): ParentLookup {
  const fromAttributes = extractWith(() => record.messageAttributes, sqsRecordAttributesGetter, PARENT_SOURCE.sqsMessageAttributes);
  if (fromAttributes.parent) return fromAttributes;
  const header = record.attributes?.AWSTraceHeader;
  if (typeof header !== 'string' || header === '') return fromAttributes;
  return lookupFrom(() => extractXRayTraceHeader(header), PARENT_SOURCE.sqsAwsTraceHeader);
}

export function extractParentFromInvokeContext(lambdaContext: LambdaContext): ParentLookup {
  return extractWith(() => lambdaContext.clientContext, clientContextGetter, PARENT_SOURCE.lambdaClientContext);
}

/**
 * Runs the registered propagator over one carrier. Never throws: an unreadable or malformed carrier gives
 * no parent, and the span starts a new root.
 */
function extractWith<C>(readCarrier: () => C, getter: TextMapGetter<C>, source: ParentSource): ParentLookup {
  return lookupFrom(() => propagation.extract(ROOT_CONTEXT, readCarrier(), getter), source);
}

function lookupFrom(extract: () => Context, source: ParentSource): ParentLookup {
  try {
    const context = extract();
    const parent = trace.getSpanContext(context);
    if (parent && trace.isSpanContextValid(parent)) return { context, source, parent };
    // No parent, but keep whatever else was extracted (baggage).
    return { context, source: PARENT_SOURCE.none };
  } catch {
    // Fall through to a new root: the event's shape was not what its type promised.
  }
  return { context: ROOT_CONTEXT, source: PARENT_SOURCE.none };
}
