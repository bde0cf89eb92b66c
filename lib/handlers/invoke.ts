import { SpanKind } from '@opentelemetry/api';
import { unwrapInvokePayload } from '../carriers/invoke-payload-envelope';
import type { InboundPolicy } from '../propagation/inbound-policy';
import { traceInvocation, type EntrySpanDescription, type LambdaFn } from '../invocation/invocation';
import { FAAS_TRIGGER } from '../semconv';
import { extractParentFromInvoke } from '../carriers/lambda-invoke';

export interface InvokeHandlerOptions {
  /** What to do with the caller's trace context (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/**
 * Wraps a function that other code invokes directly (`Invoke` API, SDK, `serverless invoke`): one SERVER span
 * named after the function, the child of the trace context found in the invoke's client context (synchronous
 * invokes) or payload envelope (asynchronous invokes), or a new root. An envelope is unwrapped: the handler
 * always receives the caller's own payload. Results and errors pass through unchanged.
 */
export function traceInvokeHandler<E, R>(handler: LambdaFn<E, R>, options: InvokeHandlerOptions = {}): LambdaFn<E, R> {
  return traceInvocation(invokeEntrySpan(options), handler, { prepare: (event: unknown) => unwrapInvokePayload(event).payload as E });
}

/**
 * The SERVER span of one invoke, named after the function, its parent read from the client context or the
 * payload envelope (the event as Lambda delivers it). Shared with the middy middleware.
 */
export function invokeEntrySpan(options: InvokeHandlerOptions): EntrySpanDescription<unknown> {
  return {
    trigger: FAAS_TRIGGER.other,
    describe(event, lambdaContext, attributes, telemetry) {
      return {
        name: lambdaContext.functionName || telemetry.config.lambda.functionName || 'invoke',
        kind: SpanKind.SERVER,
        attributes,
        lookup: extractParentFromInvoke(lambdaContext, unwrapInvokePayload(event).fields),
        inbound: options.inbound,
      };
    },
  };
}
