import { createContextKey, trace, type Context, type TextMapGetter, type TextMapPropagator, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { parseTraceState } from '../carriers/trace-state';

/** W3C Trace Context level 2: the trace id's right-most 7 bytes are random. */
const RANDOM_TRACE_FLAG = 0x02;

const RANDOM_TRACE_KEY = createContextKey('traced-lambda random trace id');

/** Marks the trace of `traceId` as having a random id in this context (and the contexts made from it). */
export function markRandomTrace(ctx: Context, traceId: string): Context {
  return ctx.setValue(RANDOM_TRACE_KEY, traceId);
}

/**
 * The official W3C Trace Context propagator, plus the level 2 random flag: the SDK recomputes a child span's
 * flags from its sampling decision only, which drops the flag a caller sent. This keeps it for the trace it
 * came with, and sets it for traces whose ids this process generated (random ones), when it injects.
 */
export class TraceContextPropagator implements TextMapPropagator {
  private readonly w3c = new W3CTraceContextPropagator();

  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    const spanContext = trace.getSpanContext(ctx);
    const random = spanContext !== undefined && ctx.getValue(RANDOM_TRACE_KEY) === spanContext.traceId;
    if (!random) {
      this.w3c.inject(ctx, carrier, setter);
      return;
    }
    this.w3c.inject(ctx, carrier, {
      set(target, key, value) {
        setter.set(target, key, key === 'traceparent' ? withRandomFlag(value) : value);
      },
    });
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    let extracted = this.w3c.extract(ctx, carrier, plainGetter(getter));
    let parent = trace.getSpanContext(extracted);
    if (parent && parent !== trace.getSpanContext(ctx)) {
      // The tracestate as the current spec reads it (see carriers/trace-state); the SDK's reading is skipped.
      const raw = getter.get(carrier, 'tracestate');
      const header = Array.isArray(raw) ? raw.join(',') : raw;
      const traceState = header === undefined ? undefined : parseTraceState(header);
      if (traceState !== parent.traceState) {
        parent = { ...parent, traceState };
        extracted = trace.setSpanContext(extracted, parent);
      }
    }
    return parent && parent !== trace.getSpanContext(ctx) && parent.traceFlags & RANDOM_TRACE_FLAG ? markRandomTrace(extracted, parent.traceId) : extracted;
  }

  fields(): string[] {
    return this.w3c.fields();
  }
}

/**
 * The getter the SDK's W3C propagator reads through: `traceparent` as plain header values (see below), and no
 * `tracestate`, which this propagator reads itself. One per carrier getter (they are module constants).
 */
const plainGetters = new WeakMap<TextMapGetter, TextMapGetter>();
function plainGetter(getter: TextMapGetter): TextMapGetter {
  let plain = plainGetters.get(getter);
  if (!plain) {
    plain = {
      keys: (carrier) => getter.keys(carrier),
      get: (carrier, key) => (key === 'traceparent' ? plainHeaderValue(getter.get(carrier, key)) : key === 'tracestate' ? undefined : getter.get(carrier, key)),
    };
    plainGetters.set(getter, plain);
  }
  return plain;
}

/**
 * A traceparent is printable ASCII between HTTP's optional white space, which is space and tab only (any amount):
 * that white space is removed here, and a value with anything else around or in it (a line feed, U+00A0, U+2028,
 * U+FEFF, which the SDK's parser would trim) is no traceparent, so the invocation starts a new root.
 */
const PLAIN_HEADER_VALUE = /^[ \t]*([\x21-\x7e]*)[ \t]*$/;
function plainHeaderValue(value: string | string[] | undefined): string | string[] | undefined {
  if (typeof value === 'string') return PLAIN_HEADER_VALUE.exec(value)?.[1];
  if (value === undefined) return undefined;
  const values: string[] = [];
  for (const one of value) {
    const plain = PLAIN_HEADER_VALUE.exec(one)?.[1];
    if (plain === undefined) return undefined;
    values.push(plain);
  }
  return values;
}

/** `00-<trace>-<span>-01` → `00-<trace>-<span>-03` */
function withRandomFlag(traceparent: string): string {
  const flags = parseInt(traceparent.slice(-2), 16);
  if (Number.isNaN(flags)) return traceparent;
  return `${traceparent.slice(0, -2)}${(flags | RANDOM_TRACE_FLAG).toString(16).padStart(2, '0')}`;
}
