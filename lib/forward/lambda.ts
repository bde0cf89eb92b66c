import { SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api';
import type { InvokeCommandInput, InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import { loadLambdaCommands } from './aws-sdk';
import { injectIntoInvokeInput } from '../carriers/lambda-invoke';
import {
  ATTR_ERROR_TYPE,
  ATTR_FAAS_INVOKED_NAME,
  ATTR_FAAS_INVOKED_PROVIDER,
  ATTR_FAAS_INVOKED_REGION,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
} from '../semconv';
import { runOutgoingCall, type ForwardOptions } from './parent';

/**
 * Invokes a function with a CLIENT `invoke <function>` span around the call and the span's context in the
 * invoke (see `injectIntoInvokeInput`), so the invoked function continues the trace. A function error
 * (`FunctionError` in the response) marks the span failed; the SDK's result and errors pass through unchanged.
 */
export async function invokeFunction(client: LambdaClient, input: InvokeCommandInput, options?: ForwardOptions): Promise<InvokeCommandOutput> {
  const name = functionNameOf(input.FunctionName);
  return runOutgoingCall({
    name: `invoke ${name}`,
    kind: SpanKind.CLIENT,
    attributes: await invokeAttributes(client, name),
    options,
    send: (callContext) => client.send(new (loadLambdaCommands().InvokeCommand)(injectIntoInvokeInput(input, callContext))),
    onResult: (span, output) => {
      if (!output?.FunctionError) return;
      span.setStatus({ code: SpanStatusCode.ERROR, message: output.FunctionError });
      span.setAttribute(ATTR_ERROR_TYPE, output.FunctionError);
    },
  });
}

async function invokeAttributes(client: LambdaClient, name: string): Promise<Attributes> {
  const attributes: Attributes = {
    [ATTR_FAAS_INVOKED_NAME]: name,
    [ATTR_FAAS_INVOKED_PROVIDER]: 'aws',
    [ATTR_RPC_SYSTEM]: 'aws-api',
    [ATTR_RPC_SERVICE]: 'Lambda',
    [ATTR_RPC_METHOD]: 'Invoke',
  };
  try {
    const region = await client.config.region();
    if (region) attributes[ATTR_FAAS_INVOKED_REGION] = region;
  } catch {
    // No region configured: the SDK call itself will say so.
  }
  return attributes;
}

/** A function name, a full or partial ARN, with or without a qualifier → the function's name. */
function functionNameOf(functionName: string | undefined): string {
  if (!functionName) return 'unknown';
  const parts = functionName.split(':');
  const at = parts.indexOf('function');
  if (at >= 0 && parts[at + 1]) return parts[at + 1];
  return parts[0];
}
