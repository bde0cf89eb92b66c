import { LambdaClient } from '@aws-sdk/client-lambda';
import { invokeFunction, traceSqsRecords } from '../lib';
import { awsClientOptions, readFunctionConfig, required } from './config';
import { parseQueuedOrder, type NotifyCustomerRequest } from './orders';

const config = readFunctionConfig();
const lambda = new LambdaClient(awsClientOptions(config.lambdaEndpoint));

/**
 * Orders queue consumer: for each order, asks notify-customer (a synchronous invoke) to confirm it.
 * A record that fails is reported for retry; the rest of the batch still succeeds.
 */
export const handler = traceSqsRecords(async (record) => {
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
});
