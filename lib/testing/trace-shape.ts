import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

/** A span tree by name and kind: what a test asserts about a trace's shape. */
export interface SpanShape {
  name: string;
  kind: keyof typeof SpanKind;
  children?: SpanShape[];
}

/**
 * Builds the trees of the given spans (roots are spans whose parent is not among them), children in start
 * order. Throws when the spans do not all share one trace id: a shape is asserted on one trace.
 */
export function traceShape(spans: readonly ReadableSpan[]): SpanShape[] {
  const traceIds = new Set(spans.map((span) => span.spanContext().traceId));
  if (traceIds.size > 1) throw new Error(`expected one trace, found ${traceIds.size}: ${[...traceIds].join(', ')}`);
  const ids = new Set(spans.map((span) => span.spanContext().spanId));
  const byStart = [...spans].sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
  const childrenOf = (parentId: string | undefined): SpanShape[] =>
    byStart
      .filter((span) => (parentId === undefined ? !ids.has(span.parentSpanContext?.spanId ?? '') : span.parentSpanContext?.spanId === parentId))
      .map((span) => {
        const children = childrenOf(span.spanContext().spanId);
        return {
          name: span.name,
          kind: SpanKind[span.kind] as keyof typeof SpanKind,
          ...(children.length > 0 ? { children } : {}),
        };
      });
  return childrenOf(undefined);
}
