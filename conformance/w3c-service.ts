/**
 * The W3C Trace Context test service (github.com/w3c/trace-context, test/README.md), built from the kit: a
 * traced HTTP handler that calls back each URL the harness lists, through `tracedFetch`, with its arguments as the
 * body. Served by `npm run conformance` behind serverless offline, on the REST and the HTTP API routes.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { traceHttpHandler, tracedFetch } from '../lib';

interface Action {
  url: string;
  arguments: Action[];
}

export const handler = traceHttpHandler(async (event: APIGatewayProxyEvent | APIGatewayProxyEventV2) => {
  const body = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  const actions = JSON.parse(body || '[]') as Action[];
  for (const action of actions) {
    const answer = await tracedFetch(action.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(action.arguments),
      signal: AbortSignal.timeout(5_000),
    });
    await answer.arrayBuffer();
  }
  return { statusCode: 200, body: 'ok' };
});
