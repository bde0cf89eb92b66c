import { randomUUID } from 'node:crypto';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, APIGatewayProxyResult } from 'aws-lambda';
import { currentTracePayload, sendMessage, traceHttpHandler, traceLogFields } from '../lib';
import { awsClientOptions, readFunctionConfig, required } from './config';
import { validateOrderRequest, type Order } from './orders';

const config = readFunctionConfig();
const sqs = new SQSClient(awsClientOptions(config.sqsEndpoint));

/** POST /orders (REST and HTTP API): validates the order, queues it for process-order, answers 202. */
export const handler = traceHttpHandler(async (event: APIGatewayProxyEvent | APIGatewayProxyEventV2): Promise<APIGatewayProxyResult> => {
  const body = parseJsonBody(event);
  if (!body.ok) return json(400, { message: body.message, traceId: currentTracePayload()?.traceId });
  const request = validateOrderRequest(body.value);
  if (!request.ok) return json(400, { message: 'the order is not valid', errors: request.errors, traceId: currentTracePayload()?.traceId });

  const order: Order = { orderId: randomUUID(), createdAt: new Date().toISOString(), ...request.value };
  await sendMessage(sqs, {
    QueueUrl: required(config.ordersQueueUrl, 'ORDERS_QUEUE_URL'),
    MessageBody: JSON.stringify(order),
    MessageAttributes: { orderId: { DataType: 'String', StringValue: order.orderId } },
  });
  console.log(JSON.stringify({ message: 'order accepted', orderId: order.orderId, ...traceLogFields() }));
  return json(202, { orderId: order.orderId, traceId: currentTracePayload()?.traceId });
});

function parseJsonBody(event: { body?: string | null; isBase64Encoded?: boolean }) {
  if (!event.body) return { ok: false as const, message: 'the request needs a JSON body' };
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return { ok: true as const, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false as const, message: 'the body is not valid JSON' };
  }
}

function json(statusCode: number, body: unknown): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}
