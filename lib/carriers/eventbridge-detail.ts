// The EventBridge hop, as a rule's target sees it: the trace context its producer put at the top of the event's
// `detail` (written with `currentTraceHeaders()`), and the name and attributes of the event's span.
import type { Attributes } from '@opentelemetry/api';
import type { EventBridgeEvent } from 'aws-lambda';
import { extractWith, NOT_FOUND, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import { ATTR_MESSAGING_MESSAGE_ID, ATTR_MESSAGING_OPERATION_TYPE } from '../semconv';
import { envelopeFieldsGetter, type TraceFields } from './invoke-payload-envelope';

/** An EventBridge event whose producer put `traceparent`/`tracestate` at the top level of `detail`. */
export function extractParentFromEventBridgeEvent(event: EventBridgeEvent<string, unknown>): ParentLookup {
  const detail = event?.detail;
  if (detail === null || typeof detail !== 'object') return NOT_FOUND;
  return extractWith(detail as TraceFields, envelopeFieldsGetter, PARENT_SOURCE.eventBridgeDetail);
}

/** Adds the event's messaging attributes to `attributes`; returns its span name, `process <detail-type>`. */
export function describeEventBridgeSpan(event: EventBridgeEvent<string, unknown>, attributes: Attributes): string {
  const detailType = event?.['detail-type'];
  attributes[ATTR_MESSAGING_OPERATION_TYPE] = 'process';
  if (event?.id) attributes[ATTR_MESSAGING_MESSAGE_ID] = event.id;
  return detailType ? `process ${detailType}` : 'process';
}
