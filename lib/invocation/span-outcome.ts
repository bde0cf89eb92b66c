// How a span records what happened: a result read into it, a thrown error marked on it (and rethrown unchanged).
import { context, SpanStatusCode, type Context, type Span } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE } from '../semconv';

/**
 * Marks a span failed by `error` (kept as an exception event); the error itself is left for the caller to
 * rethrow. Never throws, whatever was thrown: a value that cannot be turned into a string (an object with no
 * prototype) is described by its type.
 */
export function recordFailure(span: Span, error: unknown): void {
  try {
    if (error instanceof Error) {
      span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      span.setAttribute(ATTR_ERROR_TYPE, error.name || 'Error');
    } else {
      const text = describeThrown(error);
      span.recordException(text);
      span.setStatus({ code: SpanStatusCode.ERROR, message: text });
      span.setAttribute(ATTR_ERROR_TYPE, typeof error);
    }
  } catch {
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
}

function describeThrown(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * Ends a span unless it has ended already: the timeout guard (timeout-guard.ts) or a crash (crash-export.ts) may
 * have ended it, marked as such and exported, while its code was still running.
 */
export function endSpan(span: Span): void {
  if (span.isRecording()) span.end();
}

/**
 * Runs `run` with `span` current (in `inside`, a context holding it): reads the result into the span, records a thrown error on
 * it and rethrows the error unchanged, and always ends the span (unless it was ended meanwhile: see `endSpan`).
 */
export async function runInSpan<R>(span: Span, inside: Context, run: () => Promise<R>, onResult?: (span: Span, result: R) => void): Promise<R> {
  try {
    const result = await context.with(inside, run);
    if (onResult && span.isRecording()) onResult(span, result);
    return result;
  } catch (error) {
    if (span.isRecording()) recordFailure(span, error);
    throw error;
  } finally {
    endSpan(span);
  }
}
