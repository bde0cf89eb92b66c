import type { APIGatewayProxyEventV2, Context, SQSEvent } from 'aws-lambda';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** An HTTP API request carrying a traceparent, as API Gateway delivers it. */
export function apiEvent(): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: 'POST /orders',
    rawPath: '/orders',
    rawQueryString: '',
    headers: { 'content-type': 'application/json', 'user-agent': 'bench', host: 'api.example.com', traceparent: TRACEPARENT },
    body: '{"customerEmail":"ada@example.com","items":[{"sku":"BOOK-42","quantity":1}]}',
    isBase64Encoded: false,
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method: 'POST', path: '/orders', protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'bench' },
      requestId: 'req',
      routeKey: 'POST /orders',
      stage: '$default',
      time: '24/Nov/2026:10:00:00 +0000',
      timeEpoch: 1795528800000,
    },
  };
}

/** Ten SQS records, each carrying its producer's traceparent in the message attributes. */
export function sqsEvent10(): SQSEvent {
  return {
    Records: Array.from({ length: 10 }, (_, i) => ({
      messageId: `m-${i}`,
      receiptHandle: `r-${i}`,
      body: `{"orderId":"o-${i}"}`,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '1795528800000',
        SenderId: 'AIDA',
        ApproximateFirstReceiveTimestamp: '1795528800000',
      },
      messageAttributes: {
        traceparent: {
          dataType: 'String',
          stringValue: `00-${(i + 1).toString(16).padStart(32, 'a')}-${(i + 1).toString(16).padStart(16, 'b')}-01`,
          stringListValues: [],
          binaryListValues: [],
        },
      },
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:orders',
      awsRegion: 'eu-west-1',
    })),
  };
}

export function benchContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'bench',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:bench',
    memoryLimitInMB: '256',
    awsRequestId: 'a1b2c3',
    logGroupName: '/aws/lambda/bench',
    logStreamName: 'stream',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
