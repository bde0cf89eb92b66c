import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient, type SendMessageCommandInput } from '@aws-sdk/client-sqs';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ENVELOPE_KEY } from '../../lib/carriers/invoke-payload-envelope';
import { invokeFunction, sendMessage, sendMessageBatch, traceInvokeHandler, traceSqsRecords, tracedFetch, withSpan } from '../../lib';
import { captureSpans, clientContextFromInvoke, lambdaContext, sqsEvent, sqsRecordFromSendMessage, type SpanCapture } from '../../lib/testing';

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

const attribute = (value: string) => ({ DataType: 'String', StringValue: value });
const traceparentOf = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;
const traceparentOfSpan = (span: { spanContext(): { traceId: string; spanId: string } }) =>
  traceparentOf(span.spanContext().traceId, span.spanContext().spanId);

describe('sendMessage', () => {
  it('sends the PRODUCER span context in the message attributes, keeping the caller ones', async () => {
    // Arrange
    sqsMock.on(SendMessageCommand).resolves({ MessageId: 'msg-1' });

    // Act
    await withSpan('work', () => sendMessage(sqs, { QueueUrl: QUEUE_URL, MessageBody: 'hi', MessageAttributes: { orderId: attribute('o-1') } }));

    // Assert
    const producer = capture.span('send orders');
    const { traceId, spanId } = producer.spanContext();
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: QUEUE_URL,
      MessageBody: 'hi',
      MessageAttributes: { orderId: attribute('o-1'), traceparent: attribute(traceparentOf(traceId, spanId)) },
    });
    expect(producer.kind).toBe(SpanKind.PRODUCER);
    expect(producer.parentSpanContext?.spanId).toBe(capture.span('work').spanContext().spanId);
    expect(producer.attributes).toEqual({
      'messaging.system': 'aws_sqs',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.destination.name': 'orders',
      'messaging.message.id': 'msg-1',
    });
  });

  it('carries the context in AWSTraceHeader when the message already has 10 attributes, keeping Lineage', async () => {
    sqsMock.on(SendMessageCommand).resolves({ MessageId: 'msg-2' });
    const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`a${i}`, attribute(String(i))]));

    await sendMessage(sqs, {
      QueueUrl: QUEUE_URL,
      MessageBody: 'full',
      MessageAttributes: ten,
      MessageSystemAttributes: { AWSTraceHeader: attribute('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0') },
    });

    const input = sqsMock.commandCalls(SendMessageCommand)[0].args[0].input;
    expect(input.MessageAttributes).toEqual(ten);
    const { traceId, spanId } = capture.span('send orders').spanContext();
    expect(input.MessageSystemAttributes?.AWSTraceHeader?.StringValue).toBe(
      `Root=1-${traceId.slice(0, 8)}-${traceId.slice(8)};Parent=${spanId};Sampled=1;Lineage=a87bd80c:0`,
    );
  });

  it("propagates the SDK's error unchanged and marks the span failed", async () => {
    const failure = Object.assign(new Error('Queue does not exist'), { name: 'QueueDoesNotExist' });
    sqsMock.on(SendMessageCommand).rejects(failure);

    await expect(sendMessage(sqs, { QueueUrl: QUEUE_URL, MessageBody: 'x' })).rejects.toBe(failure);

    expect(capture.span('send orders').status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe('SQS round trip', () => {
  it.each([
    ['in message attributes', undefined],
    ['in AWSTraceHeader (10 attributes)', Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`a${i}`, attribute('v')]))],
  ])('the consumer span is the child of the producer span, context %s', async (_, MessageAttributes) => {
    // Arrange: capture what the producer sent and turn it into the record Lambda would deliver
    sqsMock.on(SendMessageCommand).resolves({ MessageId: 'm' });
    await sendMessage(sqs, { QueueUrl: QUEUE_URL, MessageBody: '{}', MessageAttributes });
    const sent = sqsMock.commandCalls(SendMessageCommand)[0].args[0].input as SendMessageCommandInput;
    const consumer = traceSqsRecords(async () => undefined);

    // Act
    await consumer(sqsEvent([sqsRecordFromSendMessage(sent)]), lambdaContext());

    // Assert
    const producer = capture.span('send orders');
    const processed = capture.span('process orders');
    expect(processed.spanContext().traceId).toBe(producer.spanContext().traceId);
    expect(processed.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
  });
});

describe('invokeFunction', () => {
  it('sends the CLIENT span context in ClientContext.custom, keeping the caller keys', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 200 });
    const callerContext = Buffer.from(JSON.stringify({ custom: { tenant: 'blue' }, env: { app: 'x' } })).toString('base64');

    await invokeFunction(lambda, {
      FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:notify-customer:live',
      InvocationType: 'RequestResponse',
      ClientContext: callerContext,
    });

    const client = capture.span('invoke notify-customer');
    const { traceId, spanId } = client.spanContext();
    const input = lambdaMock.commandCalls(InvokeCommand)[0].args[0].input;
    expect(clientContextFromInvoke(input)).toEqual({
      custom: { tenant: 'blue', traceparent: traceparentOf(traceId, spanId) },
      env: { app: 'x' },
    });
    expect(client.kind).toBe(SpanKind.CLIENT);
    expect(client.attributes).toMatchObject({
      'faas.invoked_name': 'notify-customer',
      'faas.invoked_provider': 'aws',
      'faas.invoked_region': 'eu-west-1',
      'rpc.system': 'aws-api',
      'rpc.method': 'Invoke',
    });
  });

  it('marks the span failed when the invoked function answers with a FunctionError', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 200, FunctionError: 'Unhandled' });

    const output = await invokeFunction(lambda, { FunctionName: 'notify-customer' });

    expect(output.FunctionError).toBe('Unhandled');
    const span = capture.span('invoke notify-customer');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.type']).toBe('Unhandled');
  });

  it('the invoked function span is the child of the invoke span (round trip)', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 200 });
    await invokeFunction(lambda, { FunctionName: 'notify-customer' });
    const input = lambdaMock.commandCalls(InvokeCommand)[0].args[0].input;
    const invoked = traceInvokeHandler(async () => 'sent');

    await invoked({}, lambdaContext({ functionName: 'notify-customer', clientContext: clientContextFromInvoke(input) }));

    const client = capture.span('invoke notify-customer');
    const server = capture.span('notify-customer');
    expect(server.spanContext().traceId).toBe(client.spanContext().traceId);
    expect(server.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
  });
});

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
      traceparent: { DataType: 'String', StringValue: traceparentOfSpan(creates[0]) },
    });
    expect(entries[1].MessageAttributes?.traceparent?.StringValue).toBe(traceparentOfSpan(creates[1]));
    expect(creates[0].attributes['messaging.message.id']).toBe('m-a');
    expect(creates[1].status).toEqual({ code: SpanStatusCode.ERROR, message: 'too big' });
    expect(send.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('each record of the batch continues its own entry span (round trip)', async () => {
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await sendMessageBatch(sqs, {
      QueueUrl: QUEUE_URL,
      Entries: [
        { Id: '1', MessageBody: '1' },
        { Id: '2', MessageBody: '2' },
      ],
    });
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
      [ENVELOPE_KEY]: { traceparent: traceparentOfSpan(capture.span('invoke audit')) },
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
    expect(seen?.traceparent).toBe(traceparentOfSpan(span));
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
