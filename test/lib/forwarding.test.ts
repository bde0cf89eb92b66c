import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ENVELOPE_KEY } from '../../lib/carriers/invoke-payload-envelope';
import { invokeFunction, sendMessageBatch, traceInvokeHandler, traceSqsRecords, tracedFetch, withSpan } from '../../lib';
import { captureSpans, lambdaContext, sqsEvent, sqsRecordFromSendMessage, type SpanCapture } from '../../lib/testing';

const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/orders';
const sqsMock = mockClient(SQSClient);
const lambdaMock = mockClient(LambdaClient);
const sqs = new SQSClient({ region: 'eu-west-1' });
const lambda = new LambdaClient({ region: 'eu-west-1' });
let capture: SpanCapture;

beforeEach(() => {
  sqsMock.reset();
  lambdaMock.reset();
  capture = captureSpans();
});

const traceparentOf = (span: { spanContext(): { traceId: string; spanId: string } }) =>
  `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`;

describe('sendMessageBatch', () => {
  it('gives every entry its own PRODUCER span and context, under one send span', async () => {
    // Arrange
    sqsMock.on(SendMessageBatchCommand).resolves({
      Successful: [{ Id: 'a', MessageId: 'm-a', MD5OfMessageBody: '' }],
      Failed: [{ Id: 'b', Code: 'InvalidParameterValue', Message: 'too big', SenderFault: true }],
    });

    // Act
    await sendMessageBatch(sqs, {
      QueueUrl: QUEUE_URL,
      Entries: [
        { Id: 'a', MessageBody: 'A', MessageAttributes: { kind: { DataType: 'String', StringValue: 'x' } } },
        { Id: 'b', MessageBody: 'B' },
      ],
    });

    // Assert
    const entries = sqsMock.commandCalls(SendMessageBatchCommand)[0].args[0].input.Entries!;
    const creates = capture.spans().filter((span) => span.name === 'create orders');
    const send = capture.span('send orders');
    expect(send.kind).toBe(SpanKind.CLIENT);
    expect(send.attributes['messaging.batch.message_count']).toBe(2);
    expect(creates.map((span) => span.kind)).toEqual([SpanKind.PRODUCER, SpanKind.PRODUCER]);
    expect(creates.every((span) => span.parentSpanContext?.spanId === send.spanContext().spanId)).toBe(true);
    expect(entries[0].MessageAttributes).toEqual({
      kind: { DataType: 'String', StringValue: 'x' },
      traceparent: { DataType: 'String', StringValue: traceparentOf(creates[0]) },
    });
    expect(entries[1].MessageAttributes?.traceparent?.StringValue).toBe(traceparentOf(creates[1]));
    expect(creates[0].attributes['messaging.message.id']).toBe('m-a');
    expect(creates[1].status).toEqual({ code: SpanStatusCode.ERROR, message: 'too big' });
    expect(send.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('each record of the batch continues its own entry span (round trip)', async () => {
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await sendMessageBatch(sqs, { QueueUrl: QUEUE_URL, Entries: [{ Id: '1', MessageBody: '1' }, { Id: '2', MessageBody: '2' }] });
    const input = sqsMock.commandCalls(SendMessageBatchCommand)[0].args[0].input;
    const records = input.Entries!.map((entry) => sqsRecordFromSendMessage({ QueueUrl: input.QueueUrl, ...entry }));

    await traceSqsRecords(async () => undefined)(sqsEvent(records), lambdaContext());

    const creates = capture.spans().filter((span) => span.name === 'create orders');
    const processes = capture.spans().filter((span) => span.name === 'process orders');
    expect(processes.map((span) => span.parentSpanContext?.spanId)).toEqual(creates.map((span) => span.spanContext().spanId));
  });
});

describe('invokeFunction with InvocationType Event', () => {
  it('carries the context in a payload envelope, not in the ClientContext AWS drops', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });

    await invokeFunction(lambda, { FunctionName: 'audit', InvocationType: 'Event', Payload: Buffer.from('{"orderId":"o-1"}') });

    const input = lambdaMock.commandCalls(InvokeCommand)[0].args[0].input;
    expect(input.ClientContext).toBeUndefined();
    expect(JSON.parse(Buffer.from(input.Payload as Uint8Array).toString())).toEqual({
      [ENVELOPE_KEY]: { traceparent: traceparentOf(capture.span('invoke audit')) },
      payload: { orderId: 'o-1' },
    });
  });

  it('is unwrapped by the invoked handler, which sees the original payload and continues the trace', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });
    await invokeFunction(lambda, { FunctionName: 'audit', InvocationType: 'Event', Payload: '{"orderId":"o-1"}' });
    const sent = JSON.parse(Buffer.from(lambdaMock.commandCalls(InvokeCommand)[0].args[0].input.Payload as Uint8Array).toString());
    let received: unknown;
    const invoked = traceInvokeHandler(async (event: unknown) => {
      received = event;
    });

    await invoked(sent, lambdaContext({ functionName: 'audit' }));

    expect(received).toEqual({ orderId: 'o-1' });
    expect(capture.span('audit').parentSpanContext?.spanId).toBe(capture.span('invoke audit').spanContext().spanId);
  });

  it('sends a payload that is not JSON as it is', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });

    await invokeFunction(lambda, { FunctionName: 'audit', InvocationType: 'Event', Payload: 'plain text' });

    expect(lambdaMock.commandCalls(InvokeCommand)[0].args[0].input.Payload).toBe('plain text');
  });

  it('leaves a DryRun untouched', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 204 });

    await invokeFunction(lambda, { FunctionName: 'audit', InvocationType: 'DryRun', Payload: '{}' });

    const input = lambdaMock.commandCalls(InvokeCommand)[0].args[0].input;
    expect(input).toEqual({ FunctionName: 'audit', InvocationType: 'DryRun', Payload: '{}' });
  });
});

describe("forwarding under the invocation's entry span", () => {
  it('attaches the forwarded call to the entry span instead of the current child span', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 200 });
    const handler = traceInvokeHandler(async () => {
      await withSpan('inner step', async () => {
        await invokeFunction(lambda, { FunctionName: 'under-entry' }, { parent: 'entry' });
        await invokeFunction(lambda, { FunctionName: 'under-current' });
      });
    });

    await handler({}, lambdaContext({ functionName: 'entry' }));

    const entry = capture.span('entry').spanContext().spanId;
    const inner = capture.span('inner step').spanContext().spanId;
    expect(capture.span('invoke under-entry').parentSpanContext?.spanId).toBe(entry);
    expect(capture.span('invoke under-current').parentSpanContext?.spanId).toBe(inner);
  });
});

describe('tracedFetch', () => {
  let server: Server;
  let seen: IncomingHttpHeaders | undefined;
  beforeAll(async () => {
    server = createServer((request, response) => {
      seen = request.headers;
      response.writeHead(request.url === '/fail' ? 503 : 200).end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('injects the CLIENT span context into the request headers, keeping the caller ones', async () => {
    const { port } = server.address() as AddressInfo;

    const response = await tracedFetch(`http://127.0.0.1:${port}/stock?sku=BOOK-42`, { headers: { 'x-request-id': 'r-1' } });

    expect(await response.text()).toBe('ok');
    const span = capture.span('GET');
    expect(seen?.traceparent).toBe(traceparentOf(span));
    expect(seen?.['x-request-id']).toBe('r-1');
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'server.port': port,
      'url.full': `http://127.0.0.1:${port}/stock?sku=BOOK-42`,
    });
  });

  it('marks an error answer failed and returns it unchanged', async () => {
    const { port } = server.address() as AddressInfo;

    const response = await tracedFetch(`http://127.0.0.1:${port}/fail`, { method: 'post', body: 'x' });

    expect(response.status).toBe(503);
    expect(capture.span('POST').status.code).toBe(SpanStatusCode.ERROR);
  });
});
