import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { traceInvokeHandler, withSpan } from '../lib';
import type { NotifyCustomerRequest, NotifyCustomerResult } from './orders';

/** Thrown when a confirmation cannot be delivered; the caller sees it as the invoke's FunctionError. */
export class UndeliverableError extends Error {
  override name = 'UndeliverableError';
}

/** Invoked by process-order: sends the order confirmation (simulated: `.invalid` addresses bounce). */
export const handler = traceInvokeHandler(async (event: NotifyCustomerRequest): Promise<NotifyCustomerResult> => {
  if (typeof event?.orderId !== 'string' || typeof event.customerEmail !== 'string') {
    throw new TypeError('notify-customer expects { orderId, customerEmail, itemCount }');
  }
  return withSpan(
    'send order confirmation',
    async () => {
      await sleep(5); // stands in for the e-mail provider's API call
      if (event.customerEmail.endsWith('.invalid')) {
        throw new UndeliverableError(`cannot deliver to ${event.customerEmail}: the domain does not exist`);
      }
      return { orderId: event.orderId, delivered: true as const, notificationId: randomUUID() };
    },
    { 'order.id': event.orderId },
  );
});
