/**
 * Powertools Logger lines that name their trace: every line the handler writes carries `trace_id` and `span_id` of
 * the invocation's span (and `trace_flags`), so a trace's log lines can be found from the trace and the other way
 * round. The kit gives the fields (`traceLogFields`); Powertools stays the function's own dependency.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { traceHttpHandler, traceLogFields } from '../lib';

const logger = new Logger({ serviceName: 'orders' });

const TRACE_KEYS = ['trace_id', 'span_id', 'trace_flags'];

/** Called first in each traced invocation: the lines written from then on carry its span. */
function correlateLogs(): void {
  // Temporary keys outlive the invocation: drop the last one's, in case this one runs untraced (no fields).
  logger.removeKeys(TRACE_KEYS);
  logger.appendKeys(traceLogFields());
}

export const handler = traceHttpHandler(async (event: APIGatewayProxyEventV2, context) => {
  correlateLogs();
  logger.addContext(context);
  logger.info('order received', { path: event.rawPath });
  const orderId = `o-${context.awsRequestId.slice(0, 8)}`;
  logger.info('order accepted', { orderId });
  return { statusCode: 202, body: JSON.stringify({ orderId }) };
});
