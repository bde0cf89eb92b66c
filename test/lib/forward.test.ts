import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SendMessageCommand, SQSClient, type SendMessageCommandInput } from '@aws-sdk/client-sqs';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { invokeFunction, sendMessage, traceInvokeHandler, traceSqsRecords, withSpan } from '../../lib';
import {
  captureSpans,
  clientContextFromInvoke,
  lambdaContext,
  sqsEvent,
  sqsRecordFromSendMessage,
  type SpanCapture,
} from '../../lib/testing';

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
