import { SpanKind } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { unwrapInvokePayload, type TraceFields } from '../carriers/invoke-payload-envelope';
import { extractParentFromInvoke } from '../extract';
import type { InboundPolicy } from '../inbound-policy';
import { beginInvocation, runInvocation, runUntraced, startEntrySpan, startTelemetrySafely, type LambdaFn, type StartedInvocation } from '../invocation';
import { invocationAttributes, takeColdStart } from '../invocation-attributes';
import { FAAS_TRIGGER } from '../semconv';
import { getTelemetry } from '../telemetry';

export interface InvokeHandlerOptions {
  /** What to do with the caller's trace context (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/**
 * Wraps a function that other code invokes directly (`Invoke` API, SDK, `serverless invoke`): one SERVER span
 * named after the function, the child of the trace context found in the invoke's client context (synchronous
 * invokes) or payload envelope (asynchronous invokes), or a new root. An envelope is unwrapped: the handler
 * always receives the caller's own payload. Results and errors pass through unchanged; spans are flushed
 * before the function returns.
 */
export function traceInvokeHandler<E, R>(handler: LambdaFn<E, R>, options: InvokeHandlerOptions = {}): LambdaFn<E, R> {
  // Not async itself: the promise of runInvocation is returned as is, without one more hop.
  return (event, lambdaContext) => {
    beginInvocation(lambdaContext);
    const { payload, fields } = unwrapInvokePayload(event);
    const callerEvent = payload as E;
    const started = startInvokeInvocation(lambdaContext, fields, options);
    if (!started) return runUntraced(() => handler(callerEvent, lambdaContext), lambdaContext);
    return runInvocation(started, lambdaContext, () => handler(callerEvent, lambdaContext));
  };
}

/**
 * Starts the SERVER span of one invoke (after `beginInvocation`), its parent read from the client context or the
 * envelope's `fields`; undefined when tracing could not start. Shared by the wrapper and the middy middleware.
 */
export function startInvokeInvocation(
  lambdaContext: LambdaContext,
  fields: TraceFields | undefined,
  options: InvokeHandlerOptions,
): StartedInvocation | undefined {
  return startTelemetrySafely(() => {
    const telemetry = getTelemetry();
    return startEntrySpan(telemetry, {
      name: lambdaContext.functionName || telemetry.config.lambda.functionName || 'invoke',
      kind: SpanKind.SERVER,
      attributes: invocationAttributes(lambdaContext, FAAS_TRIGGER.other, takeColdStart(telemetry.config.lambda.initializationType)),
      lookup: extractParentFromInvoke(lambdaContext, fields),
      inbound: options.inbound,
    });
  });
}
