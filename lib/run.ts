import { context, SpanKind, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { entryContext } from './invocation/entry-context';
import { endSpan, recordFailure } from './invocation/span-outcome';
import { markRandomTrace } from './propagation/propagator';
import { getTelemetry } from './telemetry';
import { currentTraceHeaders } from './propagation/trace-payload';

/** One root span for a long-running script or job: every span started inside it joins its trace. */
export interface Run {
  readonly span: Span;
  /** The run's context: pass it to code that starts spans or forwards the context. */
  readonly context: Context;
  /** `traceparent`/`tracestate` of the run's root span, for a call that cannot take a context. */
  headers(): Record<string, string>;
  /** Runs `work` with the run's root span current, so spans and forwards inside it attach to the root. */
  inside<T>(work: () => Promise<T> | T): Promise<T>;
  /** Ends the root span (marking it failed when `error` is given) and exports the run's spans. */
  end(error?: unknown): Promise<void>;
}

/**
 * Starts a run: a root span (new trace, or the child of `parent` when given) that stays open while a script or
 * job does its work. Use one per logical run, not per process serving many requests.
 */
export function startRun(name: string, options: { attributes?: Attributes; parent?: Context } = {}): Run {
  const telemetry = getTelemetry();
  const parent = options.parent ?? context.active();
  const span = telemetry.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes: options.attributes }, parent);
  const root = trace.getSpanContext(parent) ? parent : markRandomTrace(parent, span.spanContext().traceId);
  const runContext = entryContext(root, span);
  let ended = false;
  return {
    span,
    context: runContext,
    headers: () => currentTraceHeaders(runContext),
    inside: (work) => context.with(runContext, async () => work()),
    async end(error?: unknown) {
      if (ended) return;
      ended = true;
      if (error !== undefined && span.isRecording()) recordFailure(span, error);
      endSpan(span);
      await telemetry.flush();
    },
  };
}
