import { describe, expect, it } from 'vitest';
import { traceInvokeHandler } from '../../lib';
import { captureSpans, lambdaContext } from '../../lib/testing';

// Its own file: vitest gives each file a fresh module graph, so this process has served no invocation yet.
describe('faas.coldstart', () => {
  it('is true on the first invocation of a process only', async () => {
    const capture = captureSpans();
    const handler = traceInvokeHandler(async () => 'ok');

    await handler({}, lambdaContext({ functionName: 'first' }));
    await handler({}, lambdaContext({ functionName: 'second' }));

    expect(capture.span('first').attributes['faas.coldstart']).toBe(true);
    expect(capture.span('second').attributes['faas.coldstart']).toBe(false);
  });
});
