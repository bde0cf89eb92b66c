import { functionName } from '../../scripts/offline/stack';

/**
 * The functions the example order goes through, by their deployed names (serverless.yml may declare more: those
 * `npm run new` adds are not in this flow until something sends to them). Describe your own flow here.
 */
export const ORDER_FLOW = ['create-order', 'process-order', 'notify-customer'].map(functionName);
