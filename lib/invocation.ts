import { context, diag, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import {
  ATTR_AWS_LAMBDA_INVOKED_ARN,
  ATTR_CLOUD_ACCOUNT_ID,
  ATTR_ERROR_TYPE,
  ATTR_FAAS_COLDSTART,
  ATTR_FAAS_INVOCATION_ID,
  ATTR_FAAS_TRIGGER,
} from './semconv';
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
export function invocationAttributes(
  lambdaContext: LambdaContext,
  trigger: string,
  coldStart: boolean,
): Attributes {
  const attributes: Attributes = {
    [ATTR_FAAS_TRIGGER]: trigger,
    [ATTR_FAAS_COLDSTART]: coldStart,
  };
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

/** Marks a span failed by `error` (kept as an exception event); the error itself is left for the caller to rethrow. */
export function recordFailure(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.setAttribute(ATTR_ERROR_TYPE, error.name || 'Error');
  } else {
    span.recordException(String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
    span.setAttribute(ATTR_ERROR_TYPE, typeof error);
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
}

/**
 * Runs the handler with the invocation span as the current span; records a thrown error on the span and
 * rethrows it unchanged; ends the span and flushes before the result is returned.
 */
export async function runInvocation<R>(
  { telemetry, parentContext, span }: StartedInvocation,
  run: () => Promise<R>,
  onResult?: (span: Span, result: R) => void,
): Promise<R> {
  try {
    const result = await context.with(trace.setSpan(parentContext, span), run);
    onResult?.(span, result);
    return result;
  } catch (error) {
    recordFailure(span, error);
    throw error;
  } finally {
    span.end();
    await telemetry.flush();
  }
}
