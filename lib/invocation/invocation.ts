// One invocation's lifecycle: begin it, start the entry span safely (or run untraced), run the handler in it, then
// end the invocation (export now, or hand the export to the after-response extension). One-span triggers run it
// whole (traceInvocation); the record-batch lifecycle (record-batch.ts) and the middy middleware use its steps.
import { diag, trace, type Attributes, type Context, type Link, type Span, type SpanKind, type SpanOptions, type Tracer } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { entryContext, invocationContext } from './entry-context';
import { ATTR_FAAS_INVOCATION_ID } from '../semconv';
import { runInSpan } from './span-outcome';
import { applyInboundPolicy, type InboundPolicy } from '../propagation/inbound-policy';
import { markRandomTrace } from '../propagation/propagator';
import { getTelemetry, startAheadOfFirstInvocation, type Telemetry } from '../telemetry';
import { invocationAttributes, requestIdOf, takeColdStart } from './invocation-attributes';
import { ATTR_PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import { armTimeoutGuard, remainingTimeMs, type TimeoutGuard } from './timeout-guard';

/** A Lambda handler without the legacy callback argument. */
export type LambdaFn<E, R> = (event: E, context: LambdaContext) => Promise<R>;

/**
 * Runs the tracing set-up of one invocation. Should it ever throw, the handler runs untraced rather than
 * fail: telemetry must never change a function's result.
 */
export function startTelemetrySafely<T>(start: () => T): T | undefined {
  try {
    return start();
  } catch (error) {
    diag.error('traced-lambda: tracing could not start for this invocation; running the handler untraced', error);
    return undefined;
  }
}

/** An invocation whose span has started: the span and the context it was started in. */
export interface StartedInvocation {
  telemetry: Telemetry;
  parentContext: Context;
  span: Span;
}

/** Runs `run` with the entry span current in its entry context (see `runInSpan`: result, error, end). */
function runInEntrySpan<R>(started: StartedInvocation, run: () => Promise<R>, onResult?: (span: Span, result: R) => void): Promise<R> {
  return runInSpan(started.span, entryContext(started.parentContext, started.span), run, onResult);
}

/**
 * Runs the handler in the invocation's entry span (see `runInSpan`), then ends the invocation (`endInvocation`:
 * the export happens after the response when the Lambda extension is registered, before it otherwise).
 */
async function runInvocation<R>(
  started: StartedInvocation,
  lambdaContext: LambdaContext,
  begun: BegunInvocation | undefined,
  run: () => Promise<R>,
  onResult?: (span: Span, result: R) => void,
): Promise<R> {
  try {
    return await runInEntrySpan(started, run, onResult);
  } finally {
    const exporting = endInvocation(begun, lambdaContext);
    if (exporting) await exporting;
  }
}

/**
 * What differs between triggers: how one event's entry span is made. `describe` adds the trigger's own attributes
 * to the invocation's (`faas.*`, built once per span) and says the span's name, kind and where its parent is.
 */
export interface EntrySpanDescription<E> {
  /** The span's `faas.trigger`. */
  trigger: string;
  /** The span to start for `event`; `attributes` (the invocation's, to add to) are the request's attributes. */
  describe(event: E, lambdaContext: LambdaContext, attributes: Attributes, telemetry: Telemetry): EntrySpanRequest;
}

/** Starts one invocation's entry span as `description` says (after `beginInvocation`); undefined when tracing cannot start. */
export function startInvocation<E>(description: EntrySpanDescription<E>, event: E, lambdaContext: LambdaContext): StartedInvocation | undefined {
  return startTelemetrySafely(() => {
    const telemetry = getTelemetry();
    const attributes = invocationAttributes(lambdaContext, description.trigger, takeColdStart(telemetry.config.lambda.initializationType));
    return startEntrySpan(telemetry, description.describe(event, lambdaContext, attributes, telemetry));
  });
}

/**
 * The lifecycle of a one-span trigger (HTTP, invoke, EventBridge): the entry span `description` makes, the handler
 * run in it, its result read by `onResult`, the invocation ended; the handler runs untraced if tracing cannot
 * start. `prepare` turns the event Lambda delivers into the one the handler gets (an invoke's envelope unwrapped).
 */
export function traceInvocation<E, H, R>(
  description: EntrySpanDescription<E>,
  handler: LambdaFn<H, R>,
  options: { prepare?: (event: E) => H; onResult?: (span: Span, result: R) => void } = {},
): LambdaFn<E, R> {
  const { prepare, onResult } = options;
  startAheadOfFirstInvocation();
  // Not async itself: the promise of runInvocation is returned as is, without one more hop.
  return (event, lambdaContext) => {
    const begun = beginInvocation(lambdaContext);
    const handlerEvent = (prepare ? prepare(event) : event) as H;
    const started = begun && startInvocation(description, event, lambdaContext);
    if (!started) return runUntraced(() => handler(handlerEvent, lambdaContext), lambdaContext, begun);
    return runInvocation(started, lambdaContext, begun, () => handler(handlerEvent, lambdaContext), onResult);
  };
}

/** An invocation a wrapper has begun: the set-up that exports its spans, its request id, its timeout guard. */
export interface BegunInvocation {
  readonly telemetry: Telemetry;
  readonly invocationId: string | undefined;
  readonly guard: TimeoutGuard | undefined;
}

/**
 * Every wrapper calls this first, before any tracing work: the export scheduler follows its invocations, and the
 * invocation's timeout guard is armed. Give what it returns to `endInvocation` (undefined: tracing cannot start).
 */
export function beginInvocation(lambdaContext: LambdaContext | undefined): BegunInvocation | undefined {
  return startTelemetrySafely(() => {
    const telemetry = getTelemetry();
    const invocationId = requestIdOf(lambdaContext);
    telemetry.exports.began(invocationId);
    return { telemetry, invocationId, guard: armTimeoutGuard(telemetry, lambdaContext, invocationId) };
  });
}

/**
 * The invocation's spans have ended: the export scheduler hands the export to the Lambda extension or holds it
 * (undefined: nothing to wait for), or exports now, within what is left of the invocation (the promise to wait
 * for). After the timeout guard fired, the guard has told the scheduler already: what ended since is exported here.
 */
export function endInvocation(begun: BegunInvocation | undefined, lambdaContext: LambdaContext | undefined): Promise<void> | undefined {
  if (!begun) return undefined;
  const { guard } = begun;
  if (guard?.fired) return guard.endAfterFiring(flushBudgetMs(lambdaContext));
  guard?.disarm();
  return begun.telemetry.exports.ended(begun.invocationId, flushBudgetMs(lambdaContext));
}

/** A handler run without tracing (tracing could not start): its result as is, the invocation still ended. */
async function runUntraced<R>(run: () => Promise<R>, lambdaContext: LambdaContext | undefined, begun: BegunInvocation | undefined): Promise<R> {
  try {
    return await run();
  } finally {
    void endInvocation(begun, lambdaContext);
  }
}

/** Time kept back from the flush at the end of an invocation, so that waiting for it never times the function out. */
const FLUSH_MARGIN_MS = 50;

/** How long the end-of-invocation flush may wait: what is left of the invocation, less a margin. */
function flushBudgetMs(lambdaContext: LambdaContext | undefined): number | undefined {
  const remaining = remainingTimeMs(lambdaContext);
  return remaining === undefined ? undefined : Math.max(0, remaining - FLUSH_MARGIN_MS);
}

interface EntrySpanRequest {
  name: string;
  kind: SpanKind;
  attributes: Attributes;
  lookup: ParentLookup;
  inbound?: InboundPolicy;
  /** Starts the span under this context instead of the one found (a batch span, for per-record children). */
  parentContext?: Context;
  links?: Link[];
}

/**
 * Starts a span and then sets its attributes. Given in the start options instead, the SDK validates every
 * attribute three times (twice around the sampler, once in the span): ~0.3 µs per span of a batch. What is
 * lost: span processors' onStart and the sampler see the span without them; the built-in samplers the kit
 * configures from OTEL_TRACES_SAMPLER do not read attributes.
 */
export function startSpanThenSetAttributes(tracer: Tracer, name: string, options: SpanOptions, attributes: Attributes, parentContext: Context): Span {
  const span = tracer.startSpan(name, options, parentContext);
  span.setAttributes(attributes);
  return span;
}

/**
 * Starts an invocation's entry span where the inbound policy says, with the links it asks for, and says where its
 * parent was found (ATTR_PARENT_SOURCE). The span belongs to the invocation its `faas.invocation_id` names, and so
 * does every span started in its `entryContext`: each is exported with that invocation (InvocationSpanProcessor).
 */
export function startEntrySpan(telemetry: Telemetry, request: EntrySpanRequest): StartedInvocation {
  const placed = applyInboundPolicy(request.lookup, request.inbound);
  request.attributes[ATTR_PARENT_SOURCE] = request.lookup.source;
  const parentContext = request.parentContext ?? placed.context;
  const options: SpanOptions = { kind: request.kind };
  const links = request.links ? placed.links.concat(request.links) : placed.links;
  if (links.length > 0) options.links = links;
  const id = request.attributes[ATTR_FAAS_INVOCATION_ID];
  // The span, and every span started in its entry context, belongs to this invocation (read from the context).
  const owned = typeof id === 'string' ? invocationContext(parentContext, id) : parentContext;
  const span = startSpanThenSetAttributes(telemetry.tracer, request.name, options, request.attributes, owned);
  // A new root: its trace id came from the SDK's random generator, which W3C level 2 lets us say downstream.
  if (!trace.getSpanContext(parentContext)) {
    return { telemetry, parentContext: markRandomTrace(owned, span.spanContext().traceId), span };
  }
  return { telemetry, parentContext: owned, span };
}
