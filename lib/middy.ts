/**
 * The kit as a middy middleware: the same entry span and end-of-invocation export as `traceHttpHandler` and
 * `traceInvokeHandler` or `traceStepFunctionsTask`, for handlers built with `middy(handler).use(…)`. Typed by shape, so the kit does not
 * depend on @middy/core.
 */
import { context, diag, type ContextManagementToken, type Span } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { unwrapInvokePayload } from './carriers/invoke-payload-envelope';
import type { HttpEvent } from './carriers/http-headers';
import { httpEntrySpan, recordHttpResponse, type HttpHandlerOptions } from './handlers/http';
import { invokeEntrySpan, type InvokeHandlerOptions } from './handlers/invoke';
import { stepFunctionsTaskEntrySpan, type StepFunctionsTaskOptions } from './handlers/step-functions';
import { stepFunctionsTaskEventAsWritten } from './carriers/step-functions-input';
import { entryContext } from './invocation/entry-context';
import { beginInvocation, endInvocation, startInvocation, type BegunInvocation, type StartedInvocation } from './invocation/invocation';
import { startAheadOfFirstInvocation } from './telemetry';
import { endSpan, recordFailure } from './invocation/span-outcome';

/** What the middleware reads and writes of middy's request object. */
export interface MiddlewareRequest {
  event: unknown;
  context: LambdaContext;
  response?: unknown;
  error?: unknown;
}

/** The shape of middy's `MiddlewareObj`. Every hook resolves to undefined: a value would become middy's response. */
export interface TracingMiddleware {
  before: (request: MiddlewareRequest) => void;
  after: (request: MiddlewareRequest) => Promise<void>;
  onError: (request: MiddlewareRequest) => Promise<void>;
}

/** The trigger the function serves, with the options of the wrapper for that trigger. */
export type TracingMiddlewareOptions =
  ({ trigger: 'http' } & HttpHandlerOptions) | ({ trigger: 'invoke' } & InvokeHandlerOptions) | ({ trigger: 'step-functions' } & StepFunctionsTaskOptions);

/** One invocation's tracing, from `before` to `after`/`onError`. */
interface InvocationState {
  started: StartedInvocation | undefined;
  /** Restores the context that was current before the entry span was made current. */
  scope: ContextManagementToken | undefined;
  begun: BegunInvocation | undefined;
}

// Keyed by middy's request object, which is made anew for each invocation: invocations running at once in one
// process never see each other's state, and the state goes when its request does.
const invocations = new WeakMap<MiddlewareRequest, InvocationState>();

let sqsBatchWarned = false;

/**
 * `middy(handler).use(tracingMiddleware({ trigger: 'http', route }))`: one SERVER span per invocation, as the
 * trigger's wrapper makes it, current while the other middlewares and the handler run. Use it first, so that its
 * `after`/`onError` run last and see the function's final answer. Errors pass through unchanged; an SQS batch runs
 * untraced (its spans are per record: `traceSqsRecords`).
 */
export function tracingMiddleware(options: TracingMiddlewareOptions): TracingMiddleware {
  const start = entrySpanStarter(options);
  const recordAnswer = options.trigger === 'http' ? recordHttpResponse : undefined;
  startAheadOfFirstInvocation();

  return {
    before(request) {
      try {
        const state: InvocationState = { started: undefined, scope: undefined, begun: beginInvocation(request.context) };
        // Kept before anything can fail, so that `after` still ends the invocation.
        invocations.set(request, state);
        if (isSqsBatch(request.event)) {
          warnSqsBatch();
          return;
        }
        state.started = start(request);
        // The context manager the kit registers supports attach; with tracing disabled there is none to ask.
        if (state.started && !state.started.telemetry.config.disabled) {
          state.scope = context.attach(entryContext(state.started.parentContext, state.started.span));
        }
      } catch (error) {
        diag.error('traced-lambda: tracingMiddleware could not start tracing for this invocation', error);
      }
    },
    after: (request) => finish(request, (span) => recordAnswer?.(span, request.response)),
    onError: (request) =>
      finish(request, (span) => {
        // An earlier onError may have answered for the error: the function then returns that answer.
        if (request.response === undefined) recordFailure(span, request.error);
        else recordAnswer?.(span, request.response);
      }),
  };
}

/** How the middleware starts the entry span for its trigger, and what of the event the handler then sees. */
function entrySpanStarter(options: TracingMiddlewareOptions): (request: MiddlewareRequest) => StartedInvocation | undefined {
  if (options.trigger === 'http') {
    const http = httpEntrySpan(options);
    return (request) => startInvocation(http, request.event as HttpEvent, request.context);
  }
  const [description, handlerEvent] =
    options.trigger === 'invoke'
      ? [invokeEntrySpan(options), (event: unknown) => unwrapInvokePayload(event).payload]
      : [stepFunctionsTaskEntrySpan(options), stepFunctionsTaskEventAsWritten];
  return (request) => {
    const started = startInvocation(description, request.event, request.context);
    // As the wrapper does: the handler (and every later middleware) sees the caller's own payload.
    request.event = handlerEvent(request.event);
    return started;
  };
}

/** Ends the invocation's span after `record` has read the outcome into it, then exports (or hands off) as a wrapper does. */
async function finish(request: MiddlewareRequest, record: (span: Span) => void): Promise<void> {
  const state = invocations.get(request);
  if (!state) return;
  invocations.delete(request);
  const { started, scope, begun } = state;
  try {
    scope?.dispose();
    if (started?.span.isRecording()) record(started.span);
  } catch (error) {
    diag.error('traced-lambda: tracingMiddleware could not read the outcome of this invocation', error);
  }
  // Whatever happened above: the span ends and the invocation is over, or the extension would wait for it.
  if (started) endSpan(started.span);
  await endInvocation(begun, request.context);
}

function isSqsBatch(event: unknown): boolean {
  const records = (event as { Records?: unknown } | null | undefined)?.Records;
  return Array.isArray(records) && (records[0] as { eventSource?: unknown } | undefined)?.eventSource === 'aws:sqs';
}

function warnSqsBatch(): void {
  if (sqsBatchWarned) return;
  sqsBatchWarned = true;
  diag.warn(
    'traced-lambda: tracingMiddleware does not trace SQS batches (each record needs its own span and failure report); ' +
      'these invocations run untraced: export traceSqsRecords(recordHandler) as the handler instead.',
  );
}
