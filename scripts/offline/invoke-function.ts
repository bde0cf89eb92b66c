/**
 * How the offline event sources invoke a function: synchronously, through serverless offline's Lambda invoke
 * endpoint, as Lambda's event source mappings do, reading the answer as they read it.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { InvocationResult } from './sqs-batch-policy';

/** Invokes `functionName` with `event` and reads its answer; an invoke that fails at all fails the batch. */
export async function invokeFunction(lambda: LambdaClient, functionName: string, timeoutS: number, event: unknown): Promise<InvocationResult> {
  try {
    const response = await lambda.send(
      new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: Buffer.from(JSON.stringify(event)) }),
      // Serverless offline ends an invocation at the function's timeout; this only guards against a hung endpoint.
      { abortSignal: AbortSignal.timeout((timeoutS + 5) * 1000) },
    );
    const text = response.Payload ? Buffer.from(response.Payload).toString('utf8') : '';
    if (response.FunctionError) return { functionError: response.FunctionError };
    try {
      return { payload: text === '' ? undefined : JSON.parse(text) };
    } catch {
      return { functionError: 'the response is not JSON' };
    }
  } catch (error) {
    return { functionError: `invoke failed: ${(error as Error).message}` };
  }
}
