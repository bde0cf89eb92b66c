import { SpanKind } from '@opentelemetry/api';
import { extractParentFromStepFunctionsTask, stepFunctionsTaskEventAsWritten } from '../carriers/step-functions-input';
import type { InboundPolicy } from '../propagation/inbound-policy';
import { traceInvocation, type EntrySpanDescription, type LambdaFn } from '../invocation/invocation';
import { FAAS_TRIGGER } from '../semconv';

export interface StepFunctionsTaskOptions {
  /** What to do with the execution's trace context (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/**
 * Wraps a function that a Step Functions Task state invokes: one SERVER span named after the function, the child of
 * the context in the event's `traced_lambda_trace` member (written by `startExecution`, passed on by the state
 * definition), else of the X-Ray trace header Lambda gives the invocation (the state machine's, when its tracing is
 * on), else a new root. The handler receives the event without that member. Results and errors pass through unchanged.
 */
export function traceStepFunctionsTask<E, R>(handler: LambdaFn<E, R>, options: StepFunctionsTaskOptions = {}): LambdaFn<E, R> {
  return traceInvocation(stepFunctionsTaskEntrySpan(options), handler, { prepare: (event: unknown) => stepFunctionsTaskEventAsWritten(event) as E });
}

/**
 * The SERVER span of one Step Functions task, named after the function, its parent read from the event's reserved
 * member or the invocation's X-Ray header (the event as Lambda delivers it). Shared with the middy middleware.
 */
export function stepFunctionsTaskEntrySpan(options: StepFunctionsTaskOptions): EntrySpanDescription<unknown> {
  return {
    trigger: FAAS_TRIGGER.other,
    describe(event, lambdaContext, attributes, telemetry) {
      return {
        name: lambdaContext.functionName || telemetry.config.lambda.functionName || 'step-functions-task',
        kind: SpanKind.SERVER,
        attributes,
        lookup: extractParentFromStepFunctionsTask(event, lambdaContext),
        inbound: options.inbound,
      };
    },
  };
}
