import { SpanKind, type Attributes } from '@opentelemetry/api';
import { recordFailure } from './invocation';
import { getTelemetry } from './telemetry';

/**
 * Runs `work` in an INTERNAL span, the child of the current span, and returns its result. Errors are recorded
 * on the span and rethrown unchanged. Lets business code mark a step without importing OpenTelemetry.
 */
export async function withSpan<T>(name: string, work: () => Promise<T> | T, attributes?: Attributes): Promise<T> {
  return getTelemetry().tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    try {
      return await work();
    } catch (error) {
      recordFailure(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}
