import { diag, type TextMapGetter } from '@opentelemetry/api';
import type { ClientContext } from 'aws-lambda';

/** Lambda rejects an Invoke whose base64 `ClientContext` is longer than this. */
export const CLIENT_CONTEXT_MAX_BYTES = 3583;

type Custom = Record<string, unknown>;

/** Reads trace fields from `context.clientContext.custom`, where Lambda hands a sync invoke's client context. */
export const clientContextGetter: TextMapGetter<ClientContext | undefined> = {
  keys: (carrier) => Object.keys(customOf(carrier) ?? {}),
  get(carrier, key) {
    const value = customOf(carrier)?.[key];
    return typeof value === 'string' ? value : undefined;
  },
};

function customOf(clientContext: ClientContext | undefined): Custom | undefined {
  const custom: unknown = clientContext?.custom;
  return custom !== null && typeof custom === 'object' ? (custom as Custom) : undefined;
}

let reportedOversize = false;

/**
 * Returns the Invoke `ClientContext` (base64 JSON) with `fields` merged into its `custom` object, every other
 * key of the caller's context kept. When the caller's context cannot be read, or the result would exceed
 * Lambda's limit, the caller's value is returned untouched: the invoke must never fail because of tracing.
 */
export function mergeIntoClientContext(existing: string | undefined, fields: Record<string, string>): string | undefined {
  let decoded: Record<string, unknown> = {};
  if (existing) {
    try {
      const parsed: unknown = JSON.parse(Buffer.from(existing, 'base64').toString('utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return existing;
      decoded = parsed as Record<string, unknown>;
    } catch {
      return existing;
    }
  }
  const custom = decoded.custom ?? {};
  // A `custom` that is not an object is the caller's own data: leave it, and the context, as they are.
  if (typeof custom !== 'object' || Array.isArray(custom)) return existing;
  const merged = Buffer.from(JSON.stringify({ ...decoded, custom: { ...custom, ...fields } }), 'utf8').toString('base64');
  if (merged.length > CLIENT_CONTEXT_MAX_BYTES) {
    if (!reportedOversize) {
      reportedOversize = true;
      diag.warn(
        `traced-lambda: the Invoke ClientContext would exceed ${CLIENT_CONTEXT_MAX_BYTES} bytes with the trace context; ` +
          'it is sent without it and the invoked function starts a new trace.',
      );
    }
    return existing;
  }
  return merged;
}
