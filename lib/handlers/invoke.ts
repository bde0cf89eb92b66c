import { SpanKind } from '@opentelemetry/api';
import { extractParentFromInvokeContext } from '../extract';
import { invocationAttributes, runInvocation, startTelemetrySafely, takeColdStart, type LambdaFn } from '../invocation';
import { FAAS_TRIGGER } from '../semconv';
import { getTelemetry } from '../telemetry';

/**
 * Wraps a function that other code invokes directly (`Invoke` API, SDK, `serverless invoke`): one SERVER span
 * named after the function, the child of the trace context found in the invoke's client context, or a new root.
 * The handler's result and errors pass through unchanged; spans are flushed before the function returns.
 */
export function traceInvokeHandler<E, R>(handler: LambdaFn<E, R>): LambdaFn<E, R> {
  return async (event, lambdaContext) => {
    const started = startTelemetrySafely(() => {
      const telemetry = getTelemetry();
      const parent = extractParentFromInvokeContext(lambdaContext);
      const span = telemetry.tracer.startSpan(
        lambdaContext.functionName || telemetry.config.lambda.functionName || 'invoke',
        {
          kind: SpanKind.SERVER,
          attributes: invocationAttributes(
            lambdaContext,
            FAAS_TRIGGER.other,
            takeColdStart(telemetry.config.lambda.initializationType),
          ),
        },
        parent.context,
      );
      return { telemetry, parentContext: parent.context, span };
    });
    if (!started) return handler(event, lambdaContext);
    return runInvocation(started, () => handler(event, lambdaContext));
  };
}
