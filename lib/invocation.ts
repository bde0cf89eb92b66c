import {
  context,
  createContextKey,
  diag,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanKind,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import {
  ATTR_AWS_LAMBDA_INVOKED_ARN,
  ATTR_CLOUD_ACCOUNT_ID,
  ATTR_ERROR_TYPE,
  ATTR_FAAS_COLDSTART,
  ATTR_FAAS_INVOCATION_ID,
  ATTR_FAAS_TRIGGER,
} from './semconv';
import type { ParentLookup } from './extract';
import { handOffToExtension, invocationStarted, requestIdOf } from './after-response';
import { applyInboundPolicy, type InboundPolicy } from './inbound-policy';
import { markRandomTrace } from './propagator';
import { INVOCATION_ID_KEY, startingInvocation } from './invocation-span-processor';
import type { Telemetry } from './telemetry';

/** A Lambda handler without the legacy callback argument. */
export type LambdaFn<E, R> = (event: E, context: LambdaContext) => Promise<R>;

// Per process, not per invocation: only the first invocation a sandbox runs pays the cold start.
let coldStartPending = true;

/** True for the first invocation of this process, false afterwards (and always for provisioned concurrency). */
export function takeColdStart(initializationType: string | undefined): boolean {
  const cold = coldStartPending && initializationType !== 'provisioned-concurrency';
  coldStartPending = false;
  return cold;
}

/** The FaaS attributes every invocation span carries. */
export function invocationAttributes(lambdaContext: LambdaContext, trigger: string, coldStart: boolean): Attributes {
  // Built by assignment into one object: spreading objects with computed keys costs microseconds per span.
  const attributes: Attributes = {};
  attributes[ATTR_FAAS_TRIGGER] = trigger;
  attributes[ATTR_FAAS_COLDSTART] = coldStart;
  if (lambdaContext.awsRequestId) attributes[ATTR_FAAS_INVOCATION_ID] = lambdaContext.awsRequestId;
  const arn = lambdaContext.invokedFunctionArn;
  if (arn) {
    attributes[ATTR_AWS_LAMBDA_INVOKED_ARN] = arn;
    // arn:aws:lambda:region:account-id:function:name[:alias]
    const account = arn.split(':')[4];
    if (account) attributes[ATTR_CLOUD_ACCOUNT_ID] = account;
  }
  return attributes;
}

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
  /** The request id the span and those started under it are exported with. */
  invocationId?: string;
}

/** Where the invocation's entry span is kept, so that a forward call can attach to it instead of the current span. */
const ENTRY_SPAN_KEY = createContextKey('traced-lambda entry span');

/**
 * The context for code running inside an invocation: `span` is current and is the entry span, and spans started
 * in it belong to invocation `invocationId` (INVOCATION_ID_KEY reads it from the entry span's link).
 */
export function entryContext(parentContext: Context, span: Span, invocationId?: string): Context {
  return trace.setSpan(new ContextLink(parentContext, ENTRY_SPAN_KEY, span, invocationId), span);
}

/** Links kept in a chain before it is copied into one flat context (lookups walk the chain). */
const MAX_CHAIN = 8;

/**
 * A context that is its parent plus one value, without copying the parent: the API's own contexts copy every
 * value into a new Map at each `setValue` (~0.4 µs; an invocation makes three per span: the parent's span, the
 * entry span, the current span). Values set on it link further; past MAX_CHAIN links the chain is copied into one
 * flat context of the parent's kind, so that a lookup never walks far. It behaves as any `Context`: immutable,
 * the nearest value for a key wins, a deleted key reads as undefined.
 */
class ContextLink implements Context {
  private readonly depth: number;

  constructor(
    private readonly parent: Context,
    private readonly key: symbol,
    private readonly value: unknown,
    /** On an entry span's link: the invocation it belongs to, read as INVOCATION_ID_KEY (no link of its own). */
    private readonly invocationId: string | undefined = undefined,
  ) {
    this.depth = parent instanceof ContextLink ? parent.depth + 1 : 1;
  }

  getValue(key: symbol): unknown {
    let node: Context = this;
    while (node instanceof ContextLink) {
      if (node.key === key) return node.value;
      if (key === INVOCATION_ID_KEY && node.invocationId !== undefined) return node.invocationId;
      node = node.parent;
    }
    return node.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return this.depth < MAX_CHAIN ? new ContextLink(this, key, value) : this.flatten().setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return this.depth < MAX_CHAIN ? new ContextLink(this, key, undefined) : this.flatten().deleteValue(key);
  }

  /** The same values in the context the chain starts from (an API context): nearest value per key, as read. */
  private flatten(): Context {
    const links: ContextLink[] = [];
    let node: Context = this;
    while (node instanceof ContextLink) {
      links.push(node);
      node = node.parent;
    }
    // Replayed oldest first, so that the nearest value is set last.
    for (let index = links.length - 1; index >= 0; index--) {
      const link = links[index];
      if (link.invocationId !== undefined) node = node.setValue(INVOCATION_ID_KEY, link.invocationId);
      node = link.value === undefined ? node.deleteValue(link.key) : node.setValue(link.key, link.value);
    }
    return node;
  }
}

/** The entry span of the invocation `ctx` belongs to (the SERVER/CONSUMER span a wrapper started). */
export function getEntrySpan(ctx: Context): Span | undefined {
  return ctx.getValue(ENTRY_SPAN_KEY) as Span | undefined;
}

/**
 * Runs `run` with `span` current (in `spanContext`): reads the result into the span, records a thrown error on
 * it and rethrows the error unchanged, and always ends the span.
 */
export async function runInSpan<R>(span: Span, spanContext: Context, run: () => Promise<R>, onResult?: (span: Span, result: R) => void): Promise<R> {
  try {
    const result = await context.with(spanContext, run);
    onResult?.(span, result);
    return result;
  } catch (error) {
    recordFailure(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * Runs the handler in the invocation's entry span (see `runInSpan`), then ends the invocation (`endInvocation`:
 * the export happens after the response when the Lambda extension is registered, before it otherwise).
 */
export async function runInvocation<R>(
  { telemetry, parentContext, span, invocationId }: StartedInvocation,
  lambdaContext: LambdaContext,
  run: () => Promise<R>,
  onResult?: (span: Span, result: R) => void,
): Promise<R> {
  try {
    return await runInSpan(span, entryContext(parentContext, span, invocationId), run, onResult);
  } finally {
    const exporting = endInvocation(telemetry, lambdaContext);
    if (exporting) await exporting;
  }
}

/** Every wrapper calls this first, before any tracing work: the after-response export follows its invocations. */
export function beginInvocation(lambdaContext: LambdaContext | undefined): void {
  invocationStarted(lambdaContext);
}

/**
 * The invocation's spans have ended: hands the export to the Lambda extension (undefined: nothing to wait for),
 * or exports now, within what is left of the invocation (the promise to wait for).
 */
export function endInvocation(telemetry: Telemetry | undefined, lambdaContext: LambdaContext | undefined): Promise<void> | undefined {
  if (handOffToExtension(lambdaContext)) return undefined;
  return telemetry?.flush(flushBudgetMs(lambdaContext), requestIdOf(lambdaContext));
}

/** A handler run without tracing (tracing could not start): its result as is, the invocation still ended. */
export async function runUntraced<R>(run: () => Promise<R>, lambdaContext: LambdaContext | undefined): Promise<R> {
  try {
    return await run();
  } finally {
    void endInvocation(undefined, lambdaContext);
  }
}

/** Time kept back from the flush at the end of an invocation, so that waiting for it never times the function out. */
const FLUSH_MARGIN_MS = 50;

/** How long the end-of-invocation flush may wait: what is left of the invocation, less a margin. */
export function flushBudgetMs(lambdaContext: LambdaContext | undefined): number | undefined {
  try {
    const remaining = lambdaContext?.getRemainingTimeInMillis?.();
    return typeof remaining === 'number' && Number.isFinite(remaining) ? Math.max(0, remaining - FLUSH_MARGIN_MS) : undefined;
  } catch {
    return undefined;
  }
}

export interface EntrySpanRequest {
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
 * Starts an invocation's entry span where the inbound policy says, with the links it asks for. The span belongs to
 * the invocation its `faas.invocation_id` names, and so does every span started in its `entryContext`: each is
 * exported with that invocation (InvocationSpanProcessor).
 */
export function startEntrySpan(telemetry: Telemetry, request: EntrySpanRequest): StartedInvocation {
  const placed = applyInboundPolicy(request.lookup, request.inbound);
  const parentContext = request.parentContext ?? placed.context;
  const options: SpanOptions = { kind: request.kind };
  const links = request.links ? placed.links.concat(request.links) : placed.links;
  if (links.length > 0) options.links = links;
  const id = request.attributes[ATTR_FAAS_INVOCATION_ID];
  const invocationId = typeof id === 'string' ? id : undefined;
  startingInvocation(invocationId);
  let span: Span;
  try {
    span = startSpanThenSetAttributes(telemetry.tracer, request.name, options, request.attributes, parentContext);
  } finally {
    startingInvocation(undefined);
  }
  // A new root: its trace id came from the SDK's random generator, which W3C level 2 lets us say downstream.
  if (!trace.getSpanContext(parentContext)) {
    return { telemetry, parentContext: markRandomTrace(parentContext, span.spanContext().traceId), span, invocationId };
  }
  return { telemetry, parentContext, span, invocationId };
}
