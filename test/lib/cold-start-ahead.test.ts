import { describe, expect, it } from 'vitest';
import { traceInvokeHandler } from '../../lib';
import { captureSpans, lambdaContext } from '../../lib/testing';

// Its own file: vitest gives each file a fresh module graph, so this process has served no invocation yet.
describe('faas.coldstart where Lambda initialises the environment before traffic', () => {
  it('is false from the first invocation on Lambda Managed Instances', async () => {
    const capture = captureSpans({ AWS_LAMBDA_INITIALIZATION_TYPE: 'lambda-managed-instances' });
    const handler = traceInvokeHandler(async () => 'ok');

    await handler({}, lambdaContext({ functionName: 'first' }));
    await handler({}, lambdaContext({ functionName: 'second' }));

    expect(capture.span('first').attributes['faas.coldstart']).toBe(false);
    expect(capture.span('second').attributes['faas.coldstart']).toBe(false);
  });
});
