/** The example business domain: an order, its validation, and what travels between the functions. */

export interface OrderItem {
  sku: string;
  quantity: number;
}

export interface OrderRequest {
  customerEmail: string;
  items: OrderItem[];
}

/** An accepted order, as create-order queues it for process-order. */
export interface Order extends OrderRequest {
  orderId: string;
  createdAt: string;
}

/** What process-order asks notify-customer to send. */
export interface NotifyCustomerRequest {
  orderId: string;
  customerEmail: string;
  itemCount: number;
}

export interface NotifyCustomerResult {
  orderId: string;
  delivered: true;
  notificationId: string;
}

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const MAX_ITEMS = 50;
const MAX_QUANTITY = 1000;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const SKU = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks a request body (already parsed from JSON) and lists every problem found. */
export function validateOrderRequest(body: unknown): Validation<OrderRequest> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, errors: ['the body must be a JSON object'] };
  }
  const { customerEmail, items } = body as Record<string, unknown>;
  const errors: string[] = [];
  if (typeof customerEmail !== 'string' || !EMAIL.test(customerEmail)) {
    errors.push('customerEmail must be an e-mail address');
  }
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_ITEMS) {
    errors.push(`items must be a list of 1 to ${MAX_ITEMS} items`);
  } else {
    items.forEach((item: unknown, index) => {
      const { sku, quantity } = (item ?? {}) as Record<string, unknown>;
      if (typeof sku !== 'string' || !SKU.test(sku)) errors.push(`items[${index}].sku must be a product code`);
      if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1 || quantity > MAX_QUANTITY) {
        errors.push(`items[${index}].quantity must be a whole number from 1 to ${MAX_QUANTITY}`);
      }
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    value: {
      customerEmail: customerEmail as string,
      items: (items as OrderItem[]).map(({ sku, quantity }) => ({ sku, quantity })),
    },
  };
}

/** Reads an order back from a queue message body; throws when the message is not one. */
export function parseQueuedOrder(body: string): Order {
  const parsed: unknown = JSON.parse(body);
  const checked = validateOrderRequest(parsed);
  const { orderId, createdAt } = (parsed ?? {}) as Record<string, unknown>;
  if (!checked.ok || typeof orderId !== 'string' || typeof createdAt !== 'string') {
    throw new Error(`the message is not an order: ${checked.ok ? 'orderId and createdAt are required' : checked.errors.join('; ')}`);
  }
  return { ...checked.value, orderId, createdAt };
}
