import { context, trace } from '@opentelemetry/api';

/** The current trace context as plain values: for logs, responses and custom transports. */
export interface TracePayload {
  /** 32 lower-case hex digits. */
  traceId: string;
  /** 16 lower-case hex digits. */
  spanId: string;
  traceFlags: number;
  traceState?: string;
}

/** The active span's context as a payload, or undefined outside a traced invocation. */
export function currentTracePayload(): TracePayload | undefined {
  const spanContext = trace.getSpanContext(context.active());
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return undefined;
  const traceState = spanContext.traceState?.serialize();
  return {
    traceId: spanContext.traceId,
    spanId: spanContext.spanId,
    traceFlags: spanContext.traceFlags,
    ...(traceState ? { traceState } : {}),
  };
}
