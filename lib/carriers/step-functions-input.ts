// The Step Functions hop, both sides: the trace context written into an execution's input (StartExecution,
// StartSyncExecution) and read back, and taken out again, by a Lambda function that a Task state invokes; else the
// X-Ray trace header Lambda gives that invocation; and the names and attributes of the call's span.
//
// An execution's input is a JSON string and has no attributes, so the context travels inside it. When the input is a
// JSON object, the producer writes one reserved member first, `{"traced_lambda_trace":{"traceparent":"…"}, …}`: the
// same object with one member more to every state that reads it. Any other input (an array, a scalar, text that is not
// JSON) is sent untouched and carries no context. The name has no dot, unlike the Kinesis member: a state definition
// passes it on with a plain JSONPath (`$.traced_lambda_trace`) or JSONata (`$states.input.traced_lambda_trace`)
// expression, where a dot would be read as a step into a nested object.
import { diag, propagation, type Attributes, type Context } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { jsonFieldsGetter, jsonFieldsSetter } from '../propagation/json-fields-carrier';
import { extractWith, lookupFrom, NOT_FOUND, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import { ATTR_AWS_STEP_FUNCTIONS_STATE_MACHINE_ARN, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM } from '../semconv';
import { extractXRayTraceHeader } from './xray-trace-header';

/** The reserved member of an execution's input (and of a task's event) that holds the propagator's fields. */
export const STEP_FUNCTIONS_TRACE_MEMBER = 'traced_lambda_trace';

/** Step Functions' limit for an execution's input (and any state's input or output): 256 KiB of UTF-8. */
const STEP_FUNCTIONS_MAX_INPUT_BYTES = 256 * 1024;

let reportedSizeLimit = false;

function reportInputTooLargeForContext(): void {
  if (reportedSizeLimit) return;
  reportedSizeLimit = true;
  diag.info(
    `traced-lambda: a Step Functions execution input would pass ${STEP_FUNCTIONS_MAX_INPUT_BYTES} bytes with the trace context; it is sent without it.`,
  );
}

/**
 * Returns a copy of a StartExecution (or StartSyncExecution) input whose `input` carries the trace context of `ctx`;
 * the input itself when its `input` is not a JSON object, already carries the member (the first writer's context is
 * kept), or would pass Step Functions' 256 KiB with it. The producer's text is kept as written: the member is spliced
 * in after the opening brace, nothing is serialized again. Never throws.
 */
export function injectIntoExecutionInput<T extends { input?: string | undefined }>(input: T, ctx: Context): T {
  try {
    const text = input.input;
    if (typeof text !== 'string') return input;
    const start = text.length - text.trimStart().length;
    if (text[start] !== '{') return input;
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return input;
    if (Object.hasOwn(parsed, STEP_FUNCTIONS_TRACE_MEMBER)) return input;
    const carrier: Record<string, string> = {};
    propagation.inject(ctx, carrier, jsonFieldsSetter);
    if (Object.keys(carrier).length === 0) return input;
    // `{}` (any whitespace inside) takes the member alone; otherwise a comma separates it from the producer's first.
    const separator = Object.keys(parsed).length === 0 ? '' : ',';
    const member = `${JSON.stringify(STEP_FUNCTIONS_TRACE_MEMBER)}:${JSON.stringify(carrier)}${separator}`;
    // Measured in parts: the byte length of the spliced string would first copy it whole (milliseconds near 256 KiB).
    if (Buffer.byteLength(text, 'utf8') + Buffer.byteLength(member, 'utf8') > STEP_FUNCTIONS_MAX_INPUT_BYTES) {
      reportInputTooLargeForContext();
      return input;
    }
    return { ...input, input: text.slice(0, start + 1) + member + text.slice(start + 1) };
  } catch {
    return input;
  }
}

/** The reserved member of a task's event, when the event is an object that has one. */
function traceMemberOf(event: unknown): Record<string, unknown> | undefined {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return undefined;
  const member: unknown = (event as Record<string, unknown>)[STEP_FUNCTIONS_TRACE_MEMBER];
  return member !== null && typeof member === 'object' && !Array.isArray(member) ? (member as Record<string, unknown>) : undefined;
}

/**
 * The X-Ray trace header of this invocation: `context.xRayTraceId` where the runtime client sets it (several
 * invocations at once, as on Lambda Managed Instances), else `_X_AMZN_TRACE_ID`, which Lambda sets per invocation.
 */
function xRayTraceHeaderOf(lambdaContext: LambdaContext | undefined): string | undefined {
  const fromContext: unknown = (lambdaContext as { xRayTraceId?: unknown } | undefined)?.xRayTraceId;
  if (typeof fromContext === 'string' && fromContext !== '') return fromContext;
  const fromEnvironment = process.env._X_AMZN_TRACE_ID;
  return fromEnvironment ? fromEnvironment : undefined;
}

/**
 * A Lambda task's parent, in this order: the reserved member of its event (the state definition must pass it on:
 * docs/reference.md, "Step Functions"); the X-Ray trace header Lambda gives the invocation (the state machine's
 * trace, when its tracing is on); none. Never throws.
 */
export function extractParentFromStepFunctionsTask(event: unknown, lambdaContext: LambdaContext | undefined): ParentLookup {
  const member = traceMemberOf(event);
  const fromInput = member ? extractWith(member, jsonFieldsGetter, PARENT_SOURCE.stepFunctionsInput) : NOT_FOUND;
  if (fromInput.parent) return fromInput;
  const header = xRayTraceHeaderOf(lambdaContext);
  if (!header) return fromInput;
  const fromHeader = lookupFrom(() => extractXRayTraceHeader(header), PARENT_SOURCE.lambdaXRayTraceHeader);
  return fromHeader.parent ? fromHeader : fromInput;
}

/**
 * The task's event as the state gave it, without the reserved member (a shallow copy), or the event itself when it
 * has no such member. Never throws.
 */
export function stepFunctionsTaskEventAsWritten(event: unknown): unknown {
  if (event === null || typeof event !== 'object' || Array.isArray(event) || !Object.hasOwn(event, STEP_FUNCTIONS_TRACE_MEMBER)) return event;
  const { [STEP_FUNCTIONS_TRACE_MEMBER]: _member, ...rest } = event as Record<string, unknown>;
  return rest;
}

export type StepFunctionsMethod = 'StartExecution' | 'StartSyncExecution';

/** The name the AWS SDK client span conventions give the call's span: `SFN.StartExecution`. */
export function stepFunctionsCallSpanName(method: StepFunctionsMethod): string {
  return `SFN.${method}`;
}

/** The attributes of a StartExecution / StartSyncExecution span (the AWS SDK client span conventions). */
export function stepFunctionsCallAttributes(method: StepFunctionsMethod, stateMachineArn: string | undefined): Attributes {
  const attributes: Attributes = { [ATTR_RPC_SYSTEM]: 'aws-api', [ATTR_RPC_SERVICE]: 'SFN', [ATTR_RPC_METHOD]: method };
  if (stateMachineArn) attributes[ATTR_AWS_STEP_FUNCTIONS_STATE_MACHINE_ARN] = stateMachineArn;
  return attributes;
}
