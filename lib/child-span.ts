import { context, SpanKind, trace, type Attributes } from '@opentelemetry/api';
import { runInSpan } from './invocation/span-outcome';
import { getTelemetry } from './telemetry';

/**
 * Runs `work` in an INTERNAL span, the child of the current span, and returns its result. Errors are recorded
 * on the span and rethrown unchanged. Lets business code mark a step without importing OpenTelemetry.
 */
export function withSpan<T>(name: string, work: () => Promise<T> | T, attributes?: Attributes): Promise<T> {
  const parent = context.active();
  const span = getTelemetry().tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
  return runInSpan(span, trace.setSpan(parent, span), async () => work());
}
