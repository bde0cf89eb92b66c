// The HTTP hop, both sides: trace headers read from an API Gateway or ALB event (any header case) and written
// into an outgoing request's headers.
import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { extractWith, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';

/** The HTTP-shaped events a function can receive: API Gateway REST (v1), HTTP API (v2) and ALB. */
export type HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2 | ALBEvent;

type HeaderRecord = Record<string, string | string[] | undefined> | null | undefined;

/**
 * Every value of a header, its name matched in any case (REST APIs and ALB keep the client's case; HTTP APIs
 * lower-case names). REST and ALB events may carry `multiValueHeaders` (every value) besides `headers` (the
 * last one); the former is read first because it shows duplicates. Reads the event in place: no header map
 * is built per request.
 */
function headerValues(event: HttpEvent, name: string): string[] | undefined {
  const lower = name.toLowerCase();
  if ((event as APIGatewayProxyEventV2).version === '2.0') {
    // HTTP API lower-cases names and joins repeated headers with commas: one direct lookup.
    const value = (event.headers as HeaderRecord)?.[lower];
    return typeof value === 'string' ? [value] : undefined;
  }
  const multi = 'multiValueHeaders' in event ? (event.multiValueHeaders as HeaderRecord) : undefined;
  const fromMulti = multi ? valuesIn(multi, lower) : undefined;
  if (fromMulti) return fromMulti;
  return valuesIn(event.headers as HeaderRecord, lower);
}

/** The first value of a header, any case. */
export function headerValue(event: HttpEvent, name: string): string | undefined {
  return headerValues(event, name)?.[0];
}

function valuesIn(headers: HeaderRecord, lower: string): string[] | undefined {
  if (!headers) return undefined;
  let found: string[] | undefined;
  for (const key in headers) {
    // Cheap length test first: most names differ in length from the one looked up.
    if (key.length !== lower.length || (key !== lower && key.toLowerCase() !== lower)) continue;
    const value = headers[key];
    if (typeof value === 'string') (found ??= []).push(value);
    else if (Array.isArray(value)) for (const item of value) if (typeof item === 'string') (found ??= []).push(item);
  }
  return found;
}

/**
 * Reads trace headers from an HTTP event. Two distinct `traceparent` values make the header invalid (W3C Trace
 * Context: a request carries one), so nothing is returned and the span starts a new root; several `tracestate`
 * headers are one list, joined as HTTP joins repeated headers.
 */
const httpEventHeadersGetter: TextMapGetter<HttpEvent> = {
  keys: (event) => Object.keys(event.headers ?? {}),
  get(event, key) {
    const values = headerValues(event, key);
    if (!values || values.length === 0) return undefined;
    if (values.length === 1) return values[0];
    if (key.toLowerCase() === 'traceparent') return values.every((value) => value === values[0]) ? values[0] : undefined;
    return values.join(',');
  },
};

/** Writes trace headers into a plain header object (for `fetch` and other HTTP clients). */
export const httpHeadersSetter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

/** API Gateway REST (`multiValueHeaders`, then `headers`), HTTP API and ALB events; header names in any case. */
export function extractParentFromHttpEvent(event: HttpEvent): ParentLookup {
  return extractWith(event, httpEventHeadersGetter, PARENT_SOURCE.httpHeaders);
}
