import type { Attributes, AttributeValue, Link } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import { serializeSpans } from './otlp-json-body';

/** What was done to a span over the size limit, for the export's one log line. */
export interface OversizeSpan {
  name: string;
  /** How it was made to fit; undefined when it could not be and was left out. */
  trimmed?: { valueLength?: number; droppedEvents: number; droppedLinks: number; droppedAttributes: number };
}

// An upper bound of a span's OTLP/JSON size, cheap enough to run over every span of a large export: only a span
// whose bound is over the limit is serialized alone to learn its size. Each constant is more than the serializer
// writes for what it covers; a string is counted at 6 bytes per UTF-16 unit, JSON's longest escape (`\u001f`).
const BYTES_PER_CHAR = 6;
/** A span's ids, times, kind, status, flags, counts and field names. */
const SPAN_FIXED_BYTES = 512;
/** An event's or a link's ids, time, counts and field names. */
const ENTRY_FIXED_BYTES = 256;
/** One attribute's `{"key":…,"value":{…}}` wrapper, or a number or boolean value. */
const VALUE_FIXED_BYTES = 64;
/** The request's own `resourceSpans`, `resource`, `scopeSpans` and `scope` wrappers. */
const REQUEST_FIXED_BYTES = 256;

/**
 * Finds the spans over `maxBytes` (the size of a request holding that span alone) and makes each fit with a trimmed
 * copy, or leaves it out when it cannot fit. The spans themselves are never changed: the SDK owns them.
 * Returns `spans` itself when every span fits.
 */
export function fitOversizeSpans(spans: ReadableSpan[], maxBytes: number): { spans: ReadableSpan[]; oversize: OversizeSpan[] } {
  const oversize: OversizeSpan[] = [];
  let fitted: ReadableSpan[] | undefined;
  // One resource and one scope for every span of an invocation: their bound is computed once.
  const wrapperBounds = new Map<Resource | InstrumentationScope, number>();
  const wrapperBound = (part: Resource | InstrumentationScope, bound: () => number) => {
    let bytes = wrapperBounds.get(part);
    if (bytes === undefined) wrapperBounds.set(part, (bytes = bound()));
    return bytes;
  };
  for (let index = 0; index < spans.length; index++) {
    const span = spans[index];
    const bound =
      REQUEST_FIXED_BYTES +
      wrapperBound(span.resource, () => resourceBound(span.resource)) +
      wrapperBound(span.instrumentationScope, () => scopeBound(span.instrumentationScope)) +
      spanBound(span);
    const bytes = bound <= maxBytes ? 0 : serializeSpans([span]).byteLength;
    if (bytes <= maxBytes) {
      fitted?.push(span);
      continue;
    }
    fitted ??= spans.slice(0, index);
    const { copy, report } = trimToFit(span, bytes, maxBytes);
    if (copy) fitted.push(copy);
    oversize.push(report);
  }
  return { spans: fitted ?? spans, oversize };
}

/** How much of a span a trimmed copy keeps. */
interface Trim {
  valueLength: number;
  keepEvents: number;
  keepLinks: number;
  keepAttributes: number;
}

/** Value lengths tried in turn, before anything is dropped. */
const TRUNCATED_VALUE_LENGTHS = [4096, 256];

/**
 * Cuts long values first (as OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT would have), then drops the oldest events (as the
 * SDK's event limit does), then the last links and attributes, counting what it drops as the SDK's limits do.
 */
function trimToFit(span: ReadableSpan, bytes: number, maxBytes: number): { copy?: ReadableSpan; report: OversizeSpan } {
  let trim: Trim = { valueLength: Infinity, keepEvents: span.events.length, keepLinks: span.links.length, keepAttributes: Object.keys(span.attributes).length };
  const attempt = (candidate: Trim) => {
    const copy = trimmedCopy(span, candidate);
    return { copy, bytes: serializeSpans([copy]).byteLength };
  };
  const fits = (candidate: Trim, copy: ReadableSpan) => ({ copy, report: { name: span.name, trimmed: describeTrim(span, candidate) } });
  let last = { bytes };
  const longest = longestValue(span);
  for (const valueLength of TRUNCATED_VALUE_LENGTHS) {
    if (valueLength >= longest) continue;
    trim = { ...trim, valueLength };
    const tried = attempt(trim);
    if (tried.bytes <= maxBytes) return fits(trim, tried.copy);
    last = tried;
  }
  for (const field of ['keepEvents', 'keepLinks', 'keepAttributes'] as const) {
    const all = trim[field];
    if (all === 0) continue;
    const without = { ...trim, [field]: 0 };
    const withNone = attempt(without);
    if (withNone.bytes > maxBytes) {
      trim = without;
      last = withNone;
      continue;
    }
    // As many as fit at their average size, then fewer until they do.
    let keep = Math.floor((all * (maxBytes - withNone.bytes)) / (last.bytes - withNone.bytes));
    for (; keep > 0; keep = Math.floor(keep * 0.8)) {
      const candidate = { ...trim, [field]: keep };
      const tried = attempt(candidate);
      if (tried.bytes <= maxBytes) return fits(candidate, tried.copy);
    }
    return fits(without, withNone.copy);
  }
  return { report: { name: span.name } };
}

/** The longest text a trimmed copy may cut: attribute values (of the span, its events and links), the status message. */
function longestValue(span: ReadableSpan): number {
  let longest = textLength(span.status.message);
  const visit = (attributes: Attributes | undefined) => {
    if (!attributes) return;
    for (const key of Object.keys(attributes)) {
      const value = attributes[key];
      for (const item of Array.isArray(value) ? (value as unknown[]) : [value]) if (typeof item === 'string') longest = Math.max(longest, item.length);
    }
  };
  visit(span.attributes);
  for (const event of span.events) visit(event.attributes);
  for (const link of span.links) visit(link.attributes);
  return longest;
}

function describeTrim(span: ReadableSpan, trim: Trim): OversizeSpan['trimmed'] {
  return {
    ...(Number.isFinite(trim.valueLength) ? { valueLength: trim.valueLength } : {}),
    droppedEvents: span.events.length - trim.keepEvents,
    droppedLinks: span.links.length - trim.keepLinks,
    droppedAttributes: Object.keys(span.attributes).length - trim.keepAttributes,
  };
}

/** A copy for the serializer: what it reads of a span, trimmed; the same resource, so it is grouped with the rest. */
function trimmedCopy(span: ReadableSpan, trim: Trim): ReadableSpan {
  const context = span.spanContext();
  const keys = Object.keys(span.attributes);
  const events = span.events.slice(span.events.length - trim.keepEvents);
  const links = span.links.slice(0, trim.keepLinks);
  return {
    name: span.name,
    kind: span.kind,
    spanContext: () => context,
    parentSpanContext: span.parentSpanContext,
    startTime: span.startTime,
    endTime: span.endTime,
    status: span.status.message === undefined ? span.status : { ...span.status, message: span.status.message.slice(0, trim.valueLength) },
    attributes: truncated(span.attributes, keys.slice(0, trim.keepAttributes), trim.valueLength),
    links: links.map((link): Link =>
      link.attributes ? { ...link, attributes: truncated(link.attributes, Object.keys(link.attributes), trim.valueLength) } : link,
    ),
    events: events.map((event): TimedEvent =>
      event.attributes ? { ...event, attributes: truncated(event.attributes, Object.keys(event.attributes), trim.valueLength) } : event,
    ),
    duration: span.duration,
    ended: span.ended,
    resource: span.resource,
    instrumentationScope: span.instrumentationScope,
    droppedAttributesCount: span.droppedAttributesCount + keys.length - trim.keepAttributes,
    droppedEventsCount: span.droppedEventsCount + span.events.length - events.length,
    droppedLinksCount: span.droppedLinksCount + span.links.length - links.length,
  };
}

function truncated(attributes: Attributes, keys: string[], valueLength: number): Attributes {
  const copy: Attributes = {};
  for (const key of keys) copy[key] = truncatedValue(attributes[key], valueLength);
  return copy;
}

function truncatedValue(value: AttributeValue | undefined, valueLength: number): AttributeValue | undefined {
  if (typeof value === 'string') return value.length > valueLength ? value.slice(0, valueLength) : value;
  if (Array.isArray(value))
    return value.map((item: unknown) => (typeof item === 'string' && item.length > valueLength ? item.slice(0, valueLength) : item)) as AttributeValue;
  return value;
}

function spanBound(span: ReadableSpan): number {
  let bytes = SPAN_FIXED_BYTES + BYTES_PER_CHAR * (span.name.length + textLength(span.status.message) + textLength(span.spanContext().traceState?.serialize()));
  bytes += attributesBound(span.attributes);
  for (const event of span.events) bytes += ENTRY_FIXED_BYTES + BYTES_PER_CHAR * event.name.length + attributesBound(event.attributes);
  for (const link of span.links)
    bytes += ENTRY_FIXED_BYTES + BYTES_PER_CHAR * textLength(link.context.traceState?.serialize()) + attributesBound(link.attributes);
  return bytes;
}

function resourceBound(resource: Resource): number {
  return BYTES_PER_CHAR * textLength(resource.schemaUrl) + attributesBound(resource.attributes);
}

function scopeBound(scope: InstrumentationScope): number {
  return (
    BYTES_PER_CHAR * (scope.name.length + textLength(scope.version) + textLength(scope.schemaUrl)) +
    attributesBound((scope as { attributes?: Attributes }).attributes)
  );
}

const textLength = (text: string | undefined) => text?.length ?? 0;

function attributesBound(attributes: Attributes | undefined): number {
  let bytes = 0;
  if (attributes) for (const key of Object.keys(attributes)) bytes += VALUE_FIXED_BYTES + BYTES_PER_CHAR * key.length + valueBound(attributes[key]);
  return bytes;
}

function valueBound(value: unknown): number {
  if (typeof value === 'string') return VALUE_FIXED_BYTES + BYTES_PER_CHAR * value.length;
  if (Array.isArray(value)) return value.reduce((bytes: number, item: unknown) => bytes + valueBound(item), VALUE_FIXED_BYTES);
  // Base64 in OTLP/JSON.
  if (value instanceof Uint8Array) return VALUE_FIXED_BYTES + Math.ceil(value.byteLength / 3) * 4;
  if (value !== null && typeof value === 'object') return VALUE_FIXED_BYTES + attributesBound(value as Attributes);
  return VALUE_FIXED_BYTES;
}

/** Spans named in the log line; past them, only how many more. */
const NAMED_OVERSIZE_SPANS = 3;
/** A name is cut in the log line: it may be what made its span too large. */
const LOGGED_NAME_LENGTH = 64;

/** One line for everything an export trimmed or left out. */
export function describeOversizeSpans(oversize: OversizeSpan[], maxBytes: number): string {
  const described = oversize.slice(0, NAMED_OVERSIZE_SPANS).map(({ name: fullName, trimmed }) => {
    const name = fullName.length > LOGGED_NAME_LENGTH ? `${fullName.slice(0, LOGGED_NAME_LENGTH)}…` : fullName;
    if (!trimmed) return `"${name}" left out (too large even trimmed)`;
    const changes = [
      trimmed.valueLength === undefined ? '' : `values cut to ${trimmed.valueLength} characters`,
      trimmed.droppedEvents > 0 ? `${trimmed.droppedEvents} event(s) dropped` : '',
      trimmed.droppedLinks > 0 ? `${trimmed.droppedLinks} link(s) dropped` : '',
      trimmed.droppedAttributes > 0 ? `${trimmed.droppedAttributes} attribute(s) dropped` : '',
    ].filter(Boolean);
    return `"${name}" trimmed (${changes.join(', ')})`;
  });
  const more = oversize.length > NAMED_OVERSIZE_SPANS ? `; and ${oversize.length - NAMED_OVERSIZE_SPANS} more` : '';
  return `traced-lambda: ${oversize.length} span(s) over the endpoint's limit of ${maxBytes} bytes per span: ${described.join('; ')}${more}.`;
}
