import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

/** The OTLP/JSON body of a request holding `spans`, from the official serializer. */
export function serializeSpans(spans: ReadableSpan[]): Uint8Array {
  const body = JsonTraceSerializer.serializeRequest(spans);
  if (!body) throw new Error('the spans could not be serialized');
  return body;
}
