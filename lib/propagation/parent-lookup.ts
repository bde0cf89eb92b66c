// Looking for a handler's parent in one carrier: where it was found, and the context to start the span in.
import { propagation, ROOT_CONTEXT, trace, type Context, type SpanContext, type TextMapGetter } from '@opentelemetry/api';

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
  kinesisRecordData: 'kinesis-record-data',
  dynamoDbNewImage: 'dynamodb-new-image',
  dynamoDbOldImage: 'dynamodb-old-image',
  stepFunctionsInput: 'step-functions-input',
  lambdaXRayTraceHeader: 'lambda-xray-trace-header',
  payload: 'trace-payload',
  none: 'none',
} as const;
export type ParentSource = (typeof PARENT_SOURCE)[keyof typeof PARENT_SOURCE];

/**
 * The entry span's attribute that says where its parent was found (a PARENT_SOURCE value; `none`: nowhere, so the
 * span is a root), whatever the inbound policy then did with it. The kit's own: no convention names this.
 */
export const ATTR_PARENT_SOURCE = 'traced_lambda.parent.source';

/** The outcome of looking for a parent: the context to start the span in, and why. */
export interface ParentLookup {
  /** Holds the remote parent when one was found; otherwise the root context (the span starts a new trace). */
  context: Context;
  source: ParentSource;
  parent?: SpanContext;
}

export const NOT_FOUND: ParentLookup = { context: ROOT_CONTEXT, source: PARENT_SOURCE.none };

/**
 * Runs the registered propagator over one carrier (ours reads `tracestate` by the current W3C rules).
 * Never throws: an unreadable or malformed carrier gives no parent, and the span starts a new root.
 */
export function extractWith<C>(carrier: C, getter: TextMapGetter<C>, source: ParentSource): ParentLookup {
  return lookupFrom(() => propagation.extract(ROOT_CONTEXT, carrier, getter), source);
}

export function lookupFrom(extract: () => Context, source: ParentSource): ParentLookup {
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
