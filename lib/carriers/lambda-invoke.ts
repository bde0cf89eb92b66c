// The invoke hop, both sides: the trace context written into an Invoke input (client context, or the payload
// envelope for asynchronous invokes) and read back by the invoked function.
import { propagation, type Context } from '@opentelemetry/api';
import type { InvokeCommandInput } from '@aws-sdk/client-lambda';
import type { Context as LambdaContext } from 'aws-lambda';
import { extractWith, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import { envelopeFieldsGetter, wrapInvokePayload, type TraceFields } from './invoke-payload-envelope';
import { clientContextGetter, mergeIntoClientContext } from './lambda-client-context';

/**
 * Returns a copy of an Invoke input that carries the trace context of `ctx`:
 * - `RequestResponse` (the default): in `ClientContext.custom`, the caller's keys kept, within Lambda's
 *   3,583-byte limit;
 * - `Event`: AWS drops the client context of asynchronous invokes, so the JSON payload is wrapped in an
 *   envelope that `traceInvokeHandler` unwraps (a payload that is not JSON is sent as is, untraced);
 * - `DryRun`: nothing to carry.
 */
export function injectIntoInvokeInput(input: InvokeCommandInput, ctx: Context): InvokeCommandInput {
  if (input.InvocationType === 'DryRun') return input;
  const fields: Record<string, string> = {};
  propagation.inject(ctx, fields);
  if (Object.keys(fields).length === 0) return input;
  if (input.InvocationType === 'Event') {
    const Payload = wrapInvokePayload(input.Payload, fields);
    return Payload ? { ...input, Payload } : input;
  }
  const ClientContext = mergeIntoClientContext(input.ClientContext, fields);
  return ClientContext === input.ClientContext ? input : { ...input, ClientContext };
}

/**
 * A direct invoke: `context.clientContext.custom` (synchronous invokes), then the payload envelope's fields
 * (asynchronous invokes, whose client context AWS drops).
 */
export function extractParentFromInvoke(lambdaContext: LambdaContext, envelopeFields?: TraceFields): ParentLookup {
  const fromClientContext = extractWith(lambdaContext?.clientContext, clientContextGetter, PARENT_SOURCE.lambdaClientContext);
  if (fromClientContext.parent || !envelopeFields) return fromClientContext;
  const fromEnvelope = extractWith(envelopeFields, envelopeFieldsGetter, PARENT_SOURCE.invokePayloadEnvelope);
  return fromEnvelope.parent ? fromEnvelope : fromClientContext;
}
