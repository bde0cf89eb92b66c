import { context, propagation, ROOT_CONTEXT, trace, TraceFlags, type Context, type SpanContext } from '@opentelemetry/api';
import { parseTraceState } from '../carriers/trace-state';

/** The current trace context as plain values: for logs, responses and custom transports. */
export interface TracePayload {
  /** 32 lower-case hex digits. */
  traceId: string;
  /** 16 lower-case hex digits. */
  spanId: string;
  /** W3C trace flags (1 = sampled). */
  traceFlags: number;
  /** W3C tracestate, serialized. */
  traceState?: string;
}

const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;

/** The active span's context as a payload, or undefined outside a traced invocation. */
export function currentTracePayload(ctx: Context = context.active()): TracePayload | undefined {
  const spanContext = trace.getSpanContext(ctx);
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return undefined;
  const traceState = spanContext.traceState?.serialize();
  return {
    traceId: spanContext.traceId,
    spanId: spanContext.spanId,
    traceFlags: spanContext.traceFlags,
    ...(traceState ? { traceState } : {}),
  };
}

/**
 * The context to start spans in so that they continue the trace a payload describes: its span becomes a
 * remote parent (a non-recording span, as for any context that crossed a process boundary). An invalid
 * payload gives the root context: spans started in it begin a new trace.
 */
export function continueFromPayload(payload: Partial<TracePayload> | undefined | null): Context {
  if (!payload || typeof payload.traceId !== 'string' || typeof payload.spanId !== 'string') return ROOT_CONTEXT;
  const traceId = payload.traceId.toLowerCase();
  const spanId = payload.spanId.toLowerCase();
  if (!TRACE_ID.test(traceId) || !SPAN_ID.test(spanId)) return ROOT_CONTEXT;
  const flags = Number.isInteger(payload.traceFlags) ? (payload.traceFlags as number) & 0xff : TraceFlags.SAMPLED;
  const traceState = typeof payload.traceState === 'string' ? parseTraceState(payload.traceState) : undefined;
  const parent: SpanContext = { traceId, spanId, traceFlags: flags, isRemote: true, ...(traceState ? { traceState } : {}) };
  return trace.isSpanContextValid(parent) ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
}

/**
 * The current context as W3C fields (`traceparent`, and `tracestate` when there is one), to put in any payload
 * a consumer reads back: an EventBridge `detail`, a job record, a custom transport.
 */
export function currentTraceHeaders(ctx: Context = context.active()): Record<string, string> {
  const fields: Record<string, string> = {};
  propagation.inject(ctx, fields);
  return fields;
}

/**
 * Trace correlation fields for structured logs, named as in the OpenTelemetry log data model
 * (`trace_id`, `span_id`, `trace_flags`); empty outside a traced invocation.
 */
export function traceLogFields(ctx: Context = context.active()): { trace_id?: string; span_id?: string; trace_flags?: string } {
  const payload = currentTracePayload(ctx);
  if (!payload) return {};
  return { trace_id: payload.traceId, span_id: payload.spanId, trace_flags: payload.traceFlags.toString(16).padStart(2, '0') };
}
