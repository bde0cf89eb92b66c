import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type {
  SFNClient,
  StartExecutionCommandInput,
  StartExecutionCommandOutput,
  StartSyncExecutionCommandInput,
  StartSyncExecutionCommandOutput,
} from '@aws-sdk/client-sfn';
import { loadSfnCommands } from './aws-sdk';
import { injectIntoExecutionInput, stepFunctionsCallAttributes, stepFunctionsCallSpanName } from '../carriers/step-functions-input';
import { ATTR_ERROR_TYPE } from '../semconv';
import { runOutgoingCall, type ForwardOptions } from './parent';

/**
 * Starts an execution with a CLIENT `SFN.StartExecution` span around the call and the span's context in the
 * execution's input when it is a JSON object (docs/reference.md, "Step Functions"), so that a Lambda task wrapped with
 * `traceStepFunctionsTask` continues the trace. The SDK's result and errors pass through unchanged.
 */
export async function startExecution(client: SFNClient, input: StartExecutionCommandInput, options?: ForwardOptions): Promise<StartExecutionCommandOutput> {
  return runOutgoingCall({
    name: stepFunctionsCallSpanName('StartExecution'),
    kind: SpanKind.CLIENT,
    attributes: stepFunctionsCallAttributes('StartExecution', input.stateMachineArn),
    options,
    send: (callContext) => client.send(new (loadSfnCommands().StartExecutionCommand)(injectIntoExecutionInput(input, callContext))),
  });
}

/**
 * Runs an Express workflow to its end (StartSyncExecution) with a CLIENT `SFN.StartSyncExecution` span around the
 * call, the context carried as `startExecution` carries it. An execution that ends `FAILED` or `TIMED_OUT` marks the
 * span failed (its `error` as `error.type`); the SDK's result and errors pass through unchanged.
 */
export async function startSyncExecution(
  client: SFNClient,
  input: StartSyncExecutionCommandInput,
  options?: ForwardOptions,
): Promise<StartSyncExecutionCommandOutput> {
  return runOutgoingCall({
    name: stepFunctionsCallSpanName('StartSyncExecution'),
    kind: SpanKind.CLIENT,
    attributes: stepFunctionsCallAttributes('StartSyncExecution', input.stateMachineArn),
    options,
    send: (callContext) => client.send(new (loadSfnCommands().StartSyncExecutionCommand)(injectIntoExecutionInput(input, callContext))),
    onResult: (span, output) => {
      if (!output?.status || output.status === 'SUCCEEDED') return;
      span.setStatus({ code: SpanStatusCode.ERROR, message: output.cause ?? output.status });
      span.setAttribute(ATTR_ERROR_TYPE, output.error ?? output.status);
    },
  });
}
