import { context, trace, type Attributes, type Context, type Span, type SpanKind } from '@opentelemetry/api';
import { getEntrySpan } from '../invocation/entry-context';
import { startSpanThenSetAttributes } from '../invocation/invocation';
import { runInSpan } from '../invocation/span-outcome';
import { getTelemetry } from '../telemetry';

export interface ForwardOptions {
  /**
   * Which span the forwarded call hangs under: `current` (default), the innermost active span; or `entry`,
   * the invocation's entry span (the SERVER/CONSUMER span the wrapper started), so that the next function
   * attaches to the invocation rather than to whatever child span happens to be current.
   */
  parent?: 'current' | 'entry';
}

/** The context a forward call starts its span in. */
export function forwardParentContext(options: ForwardOptions = {}): Context {
  const active = context.active();
  if (options.parent !== 'entry') return active;
  const entry = getEntrySpan(active);
  return entry ? trace.setSpan(active, entry) : active;
}

export interface OutgoingCall<T> {
  name: string;
  kind: SpanKind;
  attributes: Attributes;
  options?: ForwardOptions;
  /** Makes the call; `callContext` holds the call's span: inject it into what is sent. */
  send: (callContext: Context) => Promise<T>;
  /** Reads the outcome into the span (message id, status code, a function error). */
  onResult?: (span: Span, result: T) => void;
}

/**
 * Runs an outgoing call in its own span (CLIENT or PRODUCER), started where the forward options say: the span
 * is current during the call, a thrown error is recorded and rethrown unchanged, and the span always ends.
 */
export async function runOutgoingCall<T>(call: OutgoingCall<T>): Promise<T> {
  const parent = forwardParentContext(call.options);
  const span = startSpanThenSetAttributes(getTelemetry().tracer, call.name, { kind: call.kind }, call.attributes, parent);
  const callContext = trace.setSpan(parent, span);
  return runInSpan(span, callContext, () => call.send(callContext), call.onResult);
}
