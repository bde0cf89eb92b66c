import { SFNClient, StartExecutionCommand, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { context, diag, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import fc from 'fast-check';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { injectIntoExecutionInput, startExecution, startSyncExecution, traceStepFunctionsTask, withSpan } from '../../lib';
import { captureSpans, lambdaContext, stepFunctionsTaskEventFromStartExecution, type SpanCapture } from '../../lib/testing';

const STATE_MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:order-flow';
const sfnMock = mockClient(SFNClient);
const sfn = new SFNClient({ region: 'eu-west-1' });
const XRAY_ROOT = '1-67891233-abcdef012345678912345678';
const XRAY_HEADER = `Root=${XRAY_ROOT};Parent=463ac35c9f6413ad;Sampled=1;Lineage=a87bd80c:1`;

let capture: SpanCapture;
beforeEach(() => {
  sfnMock.reset();
  sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE}:run-1`, startDate: new Date() });
  capture = captureSpans();
  vi.stubEnv('_X_AMZN_TRACE_ID', '');
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  return () => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  };
});

/** The execution input the client was given (the n-th StartExecution call). */
function sentInput(call = 0): string | undefined {
  return sfnMock.commandCalls(StartExecutionCommand)[call].args[0].input.input;
}

/** A context whose invocation carries an X-Ray trace header, as the runtime client gives it. */
function contextWithXRay(header: string) {
  return { ...lambdaContext({ functionName: 'charge-card' }), xRayTraceId: header };
}

describe("the test kit's Step Functions task event", () => {
  /** The StartExecution input the client was given. */
  const sentCommand = () => sfnMock.commandCalls(StartExecutionCommand)[0].args[0].input;

  it("is the whole execution input for a state that passes it on, and the task continues the producer's trace", async () => {
    // Arrange
    const seen: unknown[] = [];
    const task = traceStepFunctionsTask(async (event: { orderId: string }) => {
      seen.push(event);
      return event.orderId;
    });

    // Act
    await withSpan('place order', () => startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{"orderId":"o-1","total":12}' }));
    const event = stepFunctionsTaskEventFromStartExecution<{ orderId: string }>(sentCommand());
    const result = await task(event, lambdaContext({ functionName: 'charge-card' }));

    // Assert
    expect(event).toEqual({ traced_lambda_trace: { traceparent: expect.stringMatching(/^00-/) }, orderId: 'o-1', total: 12 });
    expect(result).toBe('o-1');
    expect(seen).toEqual([{ orderId: 'o-1', total: 12 }]);
    expect(capture.span('charge-card').parentSpanContext?.spanId).toBe(capture.span('SFN.StartExecution').spanContext().spanId);
  });

  it("picks the members a state's Parameters name, the trace member beside them", async () => {
    // Act
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{"orderId":"o-1","total":12,"customer":{"email":"ada@example.com"}}' });
    const event = stepFunctionsTaskEventFromStartExecution(sentCommand(), { members: ['total'] });
    await traceStepFunctionsTask(async () => 'charged')(event, lambdaContext());

    // Assert
    expect(event).toEqual({ traced_lambda_trace: { traceparent: expect.stringMatching(/^00-/) }, total: 12 });
    expect(capture.span('test-function').attributes['traced_lambda.parent.source']).toBe('step-functions-input');
  });

  it('fails as Step Functions fails the state when the input lacks a member, and gives {} for an execution without input', async () => {
    // Act: an input the producer sent untraced (an array carries no member)
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '[1,2]' });
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE });

    // Assert
    expect(() => stepFunctionsTaskEventFromStartExecution(sentCommand(), { members: ['total'] })).toThrow(
      "States.Runtime: the JSONPath '$.traced_lambda_trace' could not be found in the execution input [1,2]",
    );
    expect(stepFunctionsTaskEventFromStartExecution(sentCommand())).toEqual([1, 2]);
    expect(stepFunctionsTaskEventFromStartExecution(sfnMock.commandCalls(StartExecutionCommand)[1].args[0].input)).toEqual({});
  });
});

describe('startExecution → traceStepFunctionsTask', () => {
  it("continues the producer's trace in a task given the whole execution input, whose handler sees the input without the member", async () => {
    // Arrange
    const written = '{ "orderId": "o-1", "total": 1.50 }';
    const seen: unknown[] = [];
    const task = traceStepFunctionsTask(async (event: unknown) => {
      seen.push(event);
      return { charged: true };
    });

    // Act: the Task state passes the whole input on ("Payload.$": "$")
    await withSpan('place order', () => startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: written }));
    const result = await task(JSON.parse(sentInput()!), lambdaContext({ functionName: 'charge-card' }));

    // Assert
    const producer = capture.span('SFN.StartExecution');
    const taskSpan = capture.span('charge-card');
    expect(result).toEqual({ charged: true });
    expect(seen).toEqual([{ orderId: 'o-1', total: 1.5 }]);
    expect(taskSpan.kind).toBe(SpanKind.SERVER);
    expect(taskSpan.spanContext().traceId).toBe(producer.spanContext().traceId);
    expect(taskSpan.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    expect(taskSpan.attributes['traced_lambda.parent.source']).toBe('step-functions-input');
  });

  it('continues it in a task whose Parameters pick the member out of the input along with the rest', async () => {
    // Arrange
    const task = traceStepFunctionsTask(async (event: { amount: number }) => event.amount);

    // Act: "Parameters": { "amount.$": "$.total", "traced_lambda_trace.$": "$.traced_lambda_trace" }
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{"orderId":"o-1","total":12}' });
    const input = JSON.parse(sentInput()!) as Record<string, unknown>;
    const result = await task({ amount: input.total as number, traced_lambda_trace: input.traced_lambda_trace } as { amount: number }, lambdaContext());

    // Assert
    expect(result).toBe(12);
    expect(capture.span('test-function').parentSpanContext?.spanId).toBe(capture.span('SFN.StartExecution').spanContext().spanId);
  });

  it('writes the context as the first member of a JSON object input, the rest of the text as the producer wrote it', async () => {
    // Act
    await withSpan('place order', () => startExecution(sfn, { stateMachineArn: STATE_MACHINE, name: 'run-1', input: '\n {"n": 1e3,  "é":"\\u00e9"}' }));

    // Assert
    const producer = capture.span('SFN.StartExecution');
    const { traceId, spanId } = producer.spanContext();
    expect(sentInput()).toBe(`\n {"traced_lambda_trace":{"traceparent":"00-${traceId}-${spanId}-01"},"n": 1e3,  "é":"\\u00e9"}`);
    expect(sfnMock.commandCalls(StartExecutionCommand)[0].args[0].input).toMatchObject({ stateMachineArn: STATE_MACHINE, name: 'run-1' });
    expect(producer.kind).toBe(SpanKind.CLIENT);
    expect(producer.attributes).toEqual({
      'rpc.system': 'aws-api',
      'rpc.service': 'SFN',
      'rpc.method': 'StartExecution',
      'aws.step_functions.state_machine.arn': STATE_MACHINE,
    });
  });

  it('writes the member alone into an empty object', async () => {
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{ }' });

    expect(JSON.parse(sentInput()!)).toEqual({ traced_lambda_trace: { traceparent: expect.stringMatching(/^00-/) } });
  });

  it.each([
    ['text that is not JSON', 'order o-1'],
    ['a JSON array', '[{"orderId":"o-1"}]'],
    ['a JSON string', '"o-1"'],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
    ['a brace that is not JSON', '{"orderId":'],
    ['an empty string', ''],
  ])('sends %s unchanged, and its task starts a new trace', async (_case, input) => {
    // Act
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input });
    await traceStepFunctionsTask(async () => 'done')(input, lambdaContext());

    // Assert
    expect(sentInput()).toBe(input);
    const taskSpan = capture.span('test-function');
    expect(taskSpan.parentSpanContext).toBeUndefined();
    expect(taskSpan.attributes['traced_lambda.parent.source']).toBe('none');
  });

  it('sends an execution without input as it was', async () => {
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE });

    expect(sfnMock.commandCalls(StartExecutionCommand)[0].args[0].input).toEqual({ stateMachineArn: STATE_MACHINE });
  });

  it('keeps a context the input already carries (the first writer wins)', async () => {
    const carried = '{"traced_lambda_trace":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},"orderId":"o-1"}';

    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: carried });

    expect(sentInput()).toBe(carried);
  });

  it("never takes an input past Step Functions' 256 KiB with the context, and says so once", async () => {
    // Arrange: one input that fits with the context, two that only fit without it
    const info = vi.spyOn(diag, 'info');
    const padded = (bytes: number) => `{"pad":"${'x'.repeat(bytes - '{"pad":""}'.length)}"}`;
    const roomy = padded(256 * 1024 - 200);
    const tight = padded(256 * 1024 - 20);

    // Act
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: roomy });
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: tight });
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: tight });

    // Assert
    expect(Buffer.byteLength(sentInput(0)!, 'utf8')).toBeLessThanOrEqual(256 * 1024);
    expect(JSON.parse(sentInput(0)!)).toHaveProperty('traced_lambda_trace');
    expect(sentInput(1)).toBe(tight);
    expect(sentInput(2)).toBe(tight);
    expect(info.mock.calls.filter(([message]) => String(message).includes('Step Functions'))).toHaveLength(1);
  });

  it('adds the member to an input it takes to exactly 256 KiB, and not to one byte more', async () => {
    // Arrange: the member with a traceparent alone and its comma is 96 bytes
    const padded = (bytes: number) => `{"pad":"${'é'.repeat(500)}${'x'.repeat(bytes - '{"pad":""}'.length - 1000)}"}`;
    const fits = padded(256 * 1024 - 96);
    const over = padded(256 * 1024 - 95);

    // Act
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: fits });
    await startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: over });

    // Assert: sizes in UTF-8 bytes, not characters
    expect(Buffer.byteLength(fits, 'utf8')).toBe(256 * 1024 - 96);
    expect(Buffer.byteLength(sentInput(0)!, 'utf8')).toBe(256 * 1024);
    expect(sentInput(1)).toBe(over);
  });

  it("rethrows the SDK's error unchanged and marks the span failed", async () => {
    const refused = Object.assign(new Error('State Machine Does Not Exist'), { name: 'StateMachineDoesNotExist' });
    sfnMock.on(StartExecutionCommand).rejects(refused);

    await expect(startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{}' })).rejects.toBe(refused);

    expect(capture.span('SFN.StartExecution').status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe('startSyncExecution', () => {
  it('carries the context into an Express execution and marks the span failed when the execution failed', async () => {
    // Arrange
    const answer = {
      executionArn: `${STATE_MACHINE}:run-2`,
      status: 'FAILED' as const,
      error: 'PaymentDeclined',
      cause: 'card expired',
      startDate: new Date(),
      stopDate: new Date(),
    };
    sfnMock.on(StartSyncExecutionCommand).resolves(answer);

    // Act
    const output = await startSyncExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{"orderId":"o-1"}' });

    // Assert
    const span = capture.span('SFN.StartSyncExecution');
    const sent = sfnMock.commandCalls(StartSyncExecutionCommand)[0].args[0].input.input!;
    expect(output).toMatchObject({ status: 'FAILED', error: 'PaymentDeclined' });
    expect(JSON.parse(sent).traced_lambda_trace.traceparent).toBe(`00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`);
    expect(span.attributes['rpc.method']).toBe('StartSyncExecution');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'card expired' });
    expect(span.attributes['error.type']).toBe('PaymentDeclined');
  });
});

describe('traceStepFunctionsTask without the member', () => {
  it("continues the state machine's X-Ray trace from the invocation's trace header", async () => {
    // Act
    await traceStepFunctionsTask(async () => 'done')({ orderId: 'o-1' }, contextWithXRay(XRAY_HEADER));

    // Assert
    const taskSpan = capture.span('charge-card');
    expect(taskSpan.spanContext().traceId).toBe('67891233abcdef012345678912345678');
    expect(taskSpan.parentSpanContext?.spanId).toBe('463ac35c9f6413ad');
    expect(taskSpan.attributes['traced_lambda.parent.source']).toBe('lambda-xray-trace-header');
  });

  it('reads the header from _X_AMZN_TRACE_ID when the context has none', async () => {
    vi.stubEnv('_X_AMZN_TRACE_ID', XRAY_HEADER);

    await traceStepFunctionsTask(async () => 'done')({ orderId: 'o-1' }, lambdaContext());

    expect(capture.span('test-function').parentSpanContext?.spanId).toBe('463ac35c9f6413ad');
  });

  it('prefers the member to the X-Ray header', async () => {
    await withSpan('place order', () => startExecution(sfn, { stateMachineArn: STATE_MACHINE, input: '{}' }));

    await traceStepFunctionsTask(async () => 'done')(JSON.parse(sentInput()!), contextWithXRay(XRAY_HEADER));

    expect(capture.span('charge-card').parentSpanContext?.spanId).toBe(capture.span('SFN.StartExecution').spanContext().spanId);
  });

  it('falls back to the X-Ray header when the member holds no valid context', async () => {
    await traceStepFunctionsTask(async () => 'done')({ traced_lambda_trace: { traceparent: 'garbage' } }, contextWithXRay(XRAY_HEADER));

    expect(capture.span('charge-card').attributes['traced_lambda.parent.source']).toBe('lambda-xray-trace-header');
  });

  it('starts a new trace when neither is there', async () => {
    await traceStepFunctionsTask(async () => 'done')({ orderId: 'o-1' }, lambdaContext());

    const taskSpan = capture.span('test-function');
    expect(taskSpan.parentSpanContext).toBeUndefined();
    expect(taskSpan.attributes['traced_lambda.parent.source']).toBe('none');
  });
});

describe('traceStepFunctionsTask with events that are not what it expects', () => {
  it.each([
    ['null', null],
    ['a string', 'o-1'],
    ['an array', [{ traced_lambda_trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } }]],
    ['a member that is a string', { traced_lambda_trace: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }],
    ['a member whose fields are not strings', { traced_lambda_trace: { traceparent: 42, tracestate: ['a'] } }],
    ['a member that is null', { traced_lambda_trace: null }],
  ])('runs the handler for %s and starts a new trace', async (_case, event) => {
    // Act
    const result = await traceStepFunctionsTask(async (received: unknown) => received)(event, lambdaContext());

    // Assert: the member goes whatever it holds; anything else reaches the handler as it came
    const expected = event !== null && typeof event === 'object' && !Array.isArray(event) ? {} : event;
    expect(result).toEqual(expected);
    expect(capture.span('test-function').attributes['traced_lambda.parent.source']).toBe('none');
  });

  it('starts a new trace from a malformed X-Ray header', async () => {
    await traceStepFunctionsTask(async () => 'done')({}, contextWithXRay('Root=nonsense;Parent=;Sampled=x'));

    expect(capture.span('charge-card').parentSpanContext).toBeUndefined();
  });

  it("rethrows the handler's error unchanged and marks the span failed", async () => {
    const declined = new Error('declined');

    await expect(traceStepFunctionsTask(async () => Promise.reject(declined))({}, lambdaContext())).rejects.toBe(declined);

    expect(capture.span('test-function').status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe('any input, any event', () => {
  const parent = trace.setSpanContext(context.active(), { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
  const member = '"traced_lambda_trace":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}';

  it('leaves an input as it was, or adds the member alone to a JSON object, and never throws', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.dictionary(fc.string(), fc.jsonValue()).map((value) => JSON.stringify(value, null, 1)),
        ),
        (input) => {
          const sent = injectIntoExecutionInput({ stateMachineArn: STATE_MACHINE, input }, parent).input;
          if (sent === input) return;
          // Written: the member spliced in after the opening brace, the producer's text around it untouched
          const at = sent!.indexOf(member);
          const rest = sent!.slice(at + member.length);
          expect(at).toBe(input.length - input.trimStart().length + 1);
          expect(sent!.slice(0, at) + (rest.startsWith(',') ? rest.slice(1) : rest)).toBe(input);
          expect(JSON.parse(sent!)).toHaveProperty('traced_lambda_trace');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('runs the handler for any event and resolves with its result', async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), async (event) => {
        await expect(traceStepFunctionsTask(async () => 'done')(event, lambdaContext())).resolves.toBe('done');
      }),
      { numRuns: 200 },
    );
  });
});
