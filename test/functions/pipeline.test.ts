import { InvokeCommand, LambdaClient, type InvokeCommandOutput } from '@aws-sdk/client-lambda';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { SpanStatusCode } from '@opentelemetry/api';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { handler as createOrder } from '../../functions/create-order';
import { handler as notifyCustomer, UndeliverableError } from '../../functions/notify-customer';
import { handler as processOrder } from '../../functions/process-order';
import {
  apiGatewayV1Event,
  apiGatewayV2Event,
  captureSpans,
  clientContextFromInvoke,
  lambdaContext,
  sqsEvent,
  sqsRecordFromSendMessage,
  traceShape,
  type SpanCapture,
} from '../../lib/testing';
import { devService } from '../service';
import { TRACE_ID, TRACEPARENT } from '../trace-ids';

const QUEUE_URL = process.env.ORDERS_QUEUE_URL!;
const NOTIFY = process.env.NOTIFY_CUSTOMER_FUNCTION!;
// Span names carry the queue's and the function's deployed names, as serverless.yml gives them.
const SEND_ORDERS = `send ${devService.queue('OrdersQueue').name}`;
const PROCESS_ORDERS = `process ${devService.queue('OrdersQueue').name}`;
const INVOKE_NOTIFY = `invoke ${devService.functionName('notify-customer')}`;
const ORDER = { customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 2 }] };

// The SDK types a response payload as its blob adapter; the handler reads it as bytes.
const payload = (text: string) => Buffer.from(text) as unknown as InvokeCommandOutput['Payload'];

const sqsMock = mockClient(SQSClient);
const lambdaMock = mockClient(LambdaClient);
let capture: SpanCapture;

beforeEach(() => {
  sqsMock.reset();
  lambdaMock.reset();
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'msg-1' });
  capture = captureSpans();
});

describe('create-order', () => {
  it.each([
    ['REST (v1), mixed-case header', apiGatewayV1Event({ headers: { TraceParent: TRACEPARENT }, body: JSON.stringify(ORDER) })],
    ['HTTP API (v2)', apiGatewayV2Event({ headers: { traceparent: TRACEPARENT }, body: JSON.stringify(ORDER) })],
  ])('queues a valid order with the trace context and answers 202 (%s)', async (_, event) => {
    // Act
    const response = await createOrder(event as never, lambdaContext({ functionName: 'create-order' }));

    // Assert
    expect(response.statusCode).toBe(202);
    const body = JSON.parse(response.body);
    expect(body).toEqual({ orderId: expect.stringMatching(/^[0-9a-f-]{36}$/), traceId: TRACE_ID });
    const producer = capture.span(SEND_ORDERS);
    const { traceId, spanId } = producer.spanContext();
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageCommand, {
      QueueUrl: QUEUE_URL,
      MessageAttributes: {
        orderId: { DataType: 'String', StringValue: body.orderId },
        traceparent: { DataType: 'String', StringValue: `00-${traceId}-${spanId}-01` },
      },
    });
    const sent = JSON.parse(sqsMock.commandCalls(SendMessageCommand)[0].args[0].input.MessageBody!);
    expect(sent).toMatchObject({ ...ORDER, orderId: body.orderId });
    expect(traceShape(capture.spans())).toEqual([{ name: 'POST /orders', kind: 'SERVER', children: [{ name: SEND_ORDERS, kind: 'PRODUCER' }] }]);
  });

  it.each([
    ['no body', null, /needs a JSON body/],
    ['invalid JSON', '{"customerEmail":', /not valid JSON/],
    ['a JSON array', '[]', /the order is not valid/],
  ])('answers 400 and sends nothing for %s', async (_, body, message) => {
    const response = await createOrder(apiGatewayV2Event({ body }) as never, lambdaContext());

    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body).message).toMatch(message);
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageCommand);
    const span = capture.span('POST /orders');
    expect(span.attributes['http.response.status_code']).toBe(400);
    // A rejected request can be looked up too: the answer names its trace.
    expect(JSON.parse(response.body).traceId).toBe(span.spanContext().traceId);
  });

  it('lists every problem of an invalid order', async () => {
    const body = JSON.stringify({ customerEmail: 'nobody', items: [{ sku: '', quantity: 0 }] });

    const response = await createOrder(apiGatewayV2Event({ body }) as never, lambdaContext());

    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body).errors).toEqual([
      'customerEmail must be an e-mail address',
      'items[0].sku must be a product code',
      'items[0].quantity must be a whole number from 1 to 1000',
    ]);
  });

  it('lets a failed send surface as the function error, with the spans marked failed', async () => {
    const failure = new Error('throttled');
    sqsMock.on(SendMessageCommand).rejects(failure);

    await expect(createOrder(apiGatewayV2Event({ body: JSON.stringify(ORDER) }) as never, lambdaContext())).rejects.toBe(failure);
    expect(capture.span('POST /orders').status.code).toBe(SpanStatusCode.ERROR);
  });
});

describe('process-order', () => {
  const queuedOrder = (overrides: Record<string, unknown> = {}) =>
    sqsRecordFromSendMessage(
      {
        QueueUrl: QUEUE_URL,
        MessageBody: JSON.stringify({ ...ORDER, orderId: 'o-1', createdAt: '2026-11-24T10:00:00Z', ...overrides }),
        MessageAttributes: { traceparent: { DataType: 'String', StringValue: TRACEPARENT } },
      },
      { messageId: String(overrides.orderId ?? 'o-1') },
    );

  it('invokes notify-customer synchronously for each order, with the trace context', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 200 });

    const result = await processOrder(sqsEvent([queuedOrder()]), lambdaContext({ functionName: 'process-order' }));

    expect(result).toEqual({ batchItemFailures: [] });
    const invoke = capture.span(INVOKE_NOTIFY);
    const input = lambdaMock.commandCalls(InvokeCommand)[0].args[0].input;
    expect(input).toMatchObject({ FunctionName: NOTIFY, InvocationType: 'RequestResponse' });
    expect(JSON.parse(Buffer.from(input.Payload as Uint8Array).toString())).toEqual({
      orderId: 'o-1',
      customerEmail: 'ada@example.com',
      itemCount: 2,
    });
    expect(clientContextFromInvoke(input)?.custom).toEqual({
      traceparent: `00-${TRACE_ID}-${invoke.spanContext().spanId}-01`,
    });
    expect(traceShape(capture.spans())).toEqual([
      {
        name: PROCESS_ORDERS,
        kind: 'CONSUMER',
        children: [{ name: INVOKE_NOTIFY, kind: 'CLIENT' }],
      },
    ]);
  });

  it('reports the records whose notification failed, and only those', async () => {
    lambdaMock
      .on(InvokeCommand)
      .resolves({ StatusCode: 200 })
      .on(InvokeCommand, { Payload: Buffer.from(JSON.stringify({ orderId: 'o-2', customerEmail: 'x@bounce.invalid', itemCount: 2 })) })
      .resolves({ StatusCode: 200, FunctionError: 'Unhandled', Payload: payload('{"errorType":"UndeliverableError"}') });
    vi.spyOn(console, 'error').mockImplementation(() => undefined);

    const result = await processOrder(
      sqsEvent([queuedOrder(), queuedOrder({ orderId: 'o-2', customerEmail: 'x@bounce.invalid' }), queuedOrder({ orderId: 'o-3' })]),
      lambdaContext(),
    );

    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'o-2' }] });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 3);
    vi.restoreAllMocks();
  });

  it('reports a message that is not an order without invoking anything', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const record = sqsRecordFromSendMessage({ QueueUrl: QUEUE_URL, MessageBody: 'not json' }, { messageId: 'junk' });

    const result = await processOrder(sqsEvent([record]), lambdaContext());

    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'junk' }] });
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    vi.restoreAllMocks();
  });
});

describe('notify-customer', () => {
  const request = { orderId: 'o-1', customerEmail: 'ada@example.com', itemCount: 2 };

  it('continues the trace from the client context and sends the confirmation in a child span', async () => {
    const context = lambdaContext({ functionName: 'notify-customer', clientContext: { custom: { traceparent: TRACEPARENT } } as never });

    const result = await notifyCustomer(request, context);

    expect(result).toEqual({ orderId: 'o-1', delivered: true, notificationId: expect.any(String) });
    expect(traceShape(capture.spans())).toEqual([
      { name: 'notify-customer', kind: 'SERVER', children: [{ name: 'send order confirmation', kind: 'INTERNAL' }] },
    ]);
    expect(capture.span('notify-customer').spanContext().traceId).toBe(TRACE_ID);
  });

  it('throws UndeliverableError for an address that cannot exist, recorded on both spans', async () => {
    await expect(notifyCustomer({ ...request, customerEmail: 'x@bounce.invalid' }, lambdaContext({ functionName: 'notify-customer' }))).rejects.toBeInstanceOf(
      UndeliverableError,
    );
    expect(capture.span('notify-customer').status.code).toBe(SpanStatusCode.ERROR);
    expect(capture.span('send order confirmation').attributes['error.type']).toBe('UndeliverableError');
  });

  it('rejects a payload that is not a notification request', async () => {
    await expect(notifyCustomer({} as never, lambdaContext())).rejects.toThrow(/expects/);
  });
});
