import type { TextMapGetter } from '@opentelemetry/api';

/**
 * AWS drops the ClientContext of asynchronous (`Event`) invokes, so their trace context travels in the payload:
 * `{ "__otelTraceContext": { "traceparent": … }, "payload": <the caller's payload> }`. A handler wrapped with
 * `traceInvokeHandler` unwraps it and sees the original payload.
 */
export const ENVELOPE_KEY = '__otelTraceContext';

/** Async invokes accept 256 KiB payloads (1 MiB where AWS has raised the limit). */
const ASYNC_PAYLOAD_LIMIT = 256 * 1024;
const RAISED_ASYNC_PAYLOAD_LIMIT = 1024 * 1024;

export type TraceFields = Record<string, string>;

/**
 * The payload wrapped in an envelope with `fields`, or undefined when it cannot be: not JSON (the function
 * receives it as is), or too large once wrapped.
 */
export function wrapInvokePayload(payload: unknown, fields: TraceFields): Uint8Array | undefined {
  const text = payloadText(payload);
  if (text === undefined) return undefined;
  let parsed: unknown = null;
  if (text.trim() !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined;
    }
  }
  const wrapped = Buffer.from(JSON.stringify({ [ENVELOPE_KEY]: fields, payload: parsed }), 'utf8');
  const originalSize = Buffer.byteLength(text, 'utf8');
  const limit = originalSize > ASYNC_PAYLOAD_LIMIT ? RAISED_ASYNC_PAYLOAD_LIMIT : ASYNC_PAYLOAD_LIMIT;
  return wrapped.length <= limit ? new Uint8Array(wrapped.buffer, wrapped.byteOffset, wrapped.length) : undefined;
}

/** The payload as text, for the shapes the SDK accepts that can be read at once (not streams or blobs). */
function payloadText(payload: unknown): string | undefined {
  if (payload === undefined || payload === null) return '';
  if (typeof payload === 'string') return payload;
  if (payload instanceof ArrayBuffer) return Buffer.from(payload).toString('utf8');
  if (ArrayBuffer.isView(payload)) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  return undefined;
}

/** Splits an incoming event into the caller's payload and the envelope's fields (none when it is no envelope). */
export function unwrapInvokePayload(event: unknown): { payload: unknown; fields?: TraceFields } {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return { payload: event };
  const keys = Object.keys(event);
  const fields = (event as Record<string, unknown>)[ENVELOPE_KEY];
  if (keys.length !== 2 || !keys.includes('payload') || fields === null || typeof fields !== 'object') {
    return { payload: event };
  }
  return { payload: (event as { payload: unknown }).payload, fields: fields as TraceFields };
}

export const envelopeFieldsGetter: TextMapGetter<TraceFields | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => {
    const value = carrier?.[key];
    return typeof value === 'string' ? value : undefined;
  },
};
