import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';

/** The HTTP-shaped events a function can receive: API Gateway REST (v1), HTTP API (v2) and ALB. */
export type HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2 | ALBEvent;

/** Header values by lower-cased name: HTTP header names are case-insensitive, REST APIs keep the client's case. */
export type HeaderValues = Record<string, string[]>;

/**
 * Collects an event's headers by lower-cased name. REST and ALB events may carry both `headers` (last value
 * wins) and `multiValueHeaders` (every value); the latter is preferred because it shows duplicates.
 */
export function collectHttpHeaders(event: HttpEvent): HeaderValues {
  const collected: HeaderValues = {};
  const multi = 'multiValueHeaders' in event ? event.multiValueHeaders : undefined;
  if (multi) {
    for (const [name, values] of Object.entries(multi)) {
      if (!Array.isArray(values)) continue;
      const strings = values.filter((value): value is string => typeof value === 'string');
      if (strings.length > 0) (collected[name.toLowerCase()] ??= []).push(...strings);
    }
  }
  const single = event.headers as Record<string, string | undefined> | null | undefined;
  if (single) {
    for (const [name, value] of Object.entries(single)) {
      const key = name.toLowerCase();
      if (typeof value === 'string' && collected[key] === undefined) collected[key] = [value];
    }
  }
  return collected;
}

/**
 * Reads trace headers from collected HTTP headers. Two distinct `traceparent` values make the header
 * invalid (W3C Trace Context: a request carries one), so nothing is returned and the span starts a new
 * root; several `tracestate` headers are one list, joined as HTTP joins repeated headers.
 */
export const httpHeadersGetter: TextMapGetter<HeaderValues> = {
  keys: (carrier) => Object.keys(carrier),
  get(carrier, key) {
    const values = carrier[key.toLowerCase()];
    if (!values || values.length === 0) return undefined;
    if (values.length === 1) return values[0];
    if (key.toLowerCase() === 'traceparent') {
      return values.every((value) => value === values[0]) ? values[0] : undefined;
    }
    return values.join(',');
  },
};

/** Writes trace headers into a plain header object (for `fetch` and other HTTP clients). */
export const httpHeadersSetter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};
