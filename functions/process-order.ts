import { LambdaClient } from '@aws-sdk/client-lambda';
import type { SQSRecord } from 'aws-lambda';
import { invokeFunction, traceSqsRecords } from '../lib';
import { awsClientOptions, readFunctionConfig, required } from './config';
import { parseQueuedOrder, type NotifyCustomerRequest } from './orders';

const config = readFunctionConfig();
const lambda = new LambdaClient(awsClientOptions(config.lambdaEndpoint));

/** Asks notify-customer (a synchronous invoke) to confirm one queued order; throws when it cannot. */
async function confirmOrder(record: SQSRecord): Promise<void> {
  const order = parseQueuedOrder(record.body);
  const request: NotifyCustomerRequest = {
    orderId: order.orderId,
    customerEmail: order.customerEmail,
    itemCount: order.items.reduce((sum, item) => sum + item.quantity, 0),
  };
  const response = await invokeFunction(lambda, {
    FunctionName: required(config.notifyCustomerFunction, 'NOTIFY_CUSTOMER_FUNCTION'),
    InvocationType: 'RequestResponse',
    Payload: Buffer.from(JSON.stringify(request)),
  });
  if (response.FunctionError) {
    const detail = response.Payload ? Buffer.from(response.Payload).toString('utf8') : response.FunctionError;
    throw new Error(`notify-customer failed for order ${order.orderId}: ${detail}`);
  }
}

/**
 * Orders queue consumer. The orders of a batch are independent, so they are confirmed at once; a record that
 * fails is reported for retry and the rest of the batch still succeeds.
 */
export const handler = traceSqsRecords(confirmOrder, { concurrency: 10 });
