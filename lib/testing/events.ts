import { randomUUID } from 'node:crypto';
import type { InvokeCommandInput } from '@aws-sdk/client-lambda';
import type { PutRecordCommandInput, PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import type { StartExecutionCommandInput, StartSyncExecutionCommandInput } from '@aws-sdk/client-sfn';
import type { SendMessageCommandInput } from '@aws-sdk/client-sqs';
import type {
  ALBEvent,
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  ClientContext,
  Context as LambdaContext,
  DynamoDBRecord,
  DynamoDBStreamEvent,
  EventBridgeEvent,
  KinesisStreamEvent,
  KinesisStreamRecord,
  SNSEventRecord,
  SQSEvent,
  SQSMessageAttributes,
  SQSRecord,
} from 'aws-lambda';
import { withTraceMember } from '../carriers/kinesis';
import { STEP_FUNCTIONS_TRACE_MEMBER } from '../carriers/step-functions-input';

const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';

export interface HttpRequestOptions {
  method?: string;
  /** The route as declared, e.g. `/orders`. */
  path?: string;
  headers?: Record<string, string>;
  /** REST only: every value of a header, as API Gateway passes repeated headers. */
  multiValueHeaders?: Record<string, string[]>;
  body?: string | null;
  stage?: string;
}

/** An API Gateway REST (v1) proxy event; headers keep the case they are given in, as REST APIs do. */
export function apiGatewayV1Event(options: HttpRequestOptions = {}): APIGatewayProxyEvent {
  const { method = 'POST', path = '/orders', headers = {}, body = null, stage = 'dev' } = options;
  const multiValueHeaders = options.multiValueHeaders ?? multiValue(headers);
  return {
    resource: path,
    path,
    httpMethod: method,
    headers,
    multiValueHeaders,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    body,
    isBase64Encoded: false,
    requestContext: {
      accountId: ACCOUNT,
      apiId: 'restapi01',
      authorizer: undefined,
      protocol: 'HTTP/1.1',
      httpMethod: method,
      identity: { sourceIp: '203.0.113.7', userAgent: headers['User-Agent'] ?? null } as APIGatewayProxyEvent['requestContext']['identity'],
      path: `/${stage}${path}`,
      stage,
      requestId: randomUUID(),
      requestTimeEpoch: Date.now(),
      resourceId: 'res01',
      resourcePath: path,
    },
  };
}

/** An ALB target group's event, multi-value headers on (as REST, every value of a header); ALB events carry no route. */
export function albEvent(options: HttpRequestOptions = {}): ALBEvent {
  const { method = 'POST', path = '/orders', headers = {}, body = null } = options;
  return {
    requestContext: { elb: { targetGroupArn: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/orders/1` } },
    httpMethod: method,
    path,
    queryStringParameters: {},
    multiValueHeaders: options.multiValueHeaders ?? multiValue(headers),
    body,
    isBase64Encoded: false,
  };
}

function multiValue(headers: Record<string, string>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]]));
}

/** An API Gateway HTTP API (v2) event; header names are lower-cased, as HTTP APIs do. */
export function apiGatewayV2Event(options: HttpRequestOptions = {}): APIGatewayProxyEventV2 {
  const { method = 'POST', path = '/orders', headers = {}, body, stage = '$default' } = options;
  return {
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value])),
    body: body ?? undefined,
    isBase64Encoded: false,
    requestContext: {
      accountId: ACCOUNT,
      apiId: 'httpapi01',
      domainName: 'httpapi01.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'httpapi01',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: headers['user-agent'] ?? 'test' },
      requestId: randomUUID(),
      routeKey: `${method} ${path}`,
      stage,
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
  };
}

/**
 * A Function URL's event: HTTP API v2's shape, as Lambda delivers it for a function's own URL (every path reaches
 * the function: the route key is `$default`, the domain the URL's).
 */
export function functionUrlEvent(options: HttpRequestOptions = {}): APIGatewayProxyEventV2 {
  const event = apiGatewayV2Event({ method: 'GET', ...options });
  const domainName = 'abcdefghij0123456789.lambda-url.eu-west-1.on.aws';
  return {
    ...event,
    routeKey: '$default',
    requestContext: { ...event.requestContext, apiId: 'abcdefghij0123456789', domainName, domainPrefix: 'abcdefghij0123456789', routeKey: '$default' },
  };
}

export interface SqsRecordOptions {
  body?: string;
  /** Shorthand for a `traceparent` string message attribute, as our producers write it. */
  traceparent?: string;
  messageAttributes?: SQSMessageAttributes;
  /** System attributes such as `AWSTraceHeader`. */
  attributes?: Partial<SQSRecord['attributes']>;
  queueName?: string;
  messageId?: string;
}

/** One SQS record as Lambda delivers it. */
export function sqsRecord(options: SqsRecordOptions = {}): SQSRecord {
  const { body = '{}', queueName = 'orders', messageId = randomUUID() } = options;
  const messageAttributes = { ...options.messageAttributes };
  if (options.traceparent) messageAttributes.traceparent = stringAttribute(options.traceparent);
  return {
    messageId,
    receiptHandle: `receipt-${messageId}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: 'AIDAEXAMPLE',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
      ...options.attributes,
    },
    messageAttributes,
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${REGION}:${ACCOUNT}:${queueName}`,
    awsRegion: REGION,
  };
}

/** A string message attribute as Lambda delivers it in `record.messageAttributes`. */
export function stringAttribute(value: string): SQSMessageAttributes[string] {
  return { dataType: 'String', stringValue: value, stringListValues: [], binaryListValues: [] };
}

export function sqsEvent(records: SQSRecord[]): SQSEvent {
  return { Records: records };
}

/**
 * The record a consumer receives for a captured SendMessage input: body, message attributes (as Lambda
 * shapes them) and the `AWSTraceHeader` system attribute when the producer set it.
 */
export function sqsRecordFromSendMessage(input: SendMessageCommandInput, options: SqsRecordOptions = {}): SQSRecord {
  const messageAttributes: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(input.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      dataType: value.DataType ?? 'String',
      stringValue: value.StringValue,
      stringListValues: [],
      binaryListValues: [],
    };
  }
  const traceHeader = input.MessageSystemAttributes?.AWSTraceHeader?.StringValue;
  return sqsRecord({
    queueName: input.QueueUrl?.split('/').pop(),
    ...options,
    body: input.MessageBody ?? '',
    messageAttributes,
    attributes: traceHeader ? { AWSTraceHeader: traceHeader, ...options.attributes } : options.attributes,
  });
}

/**
 * A Lambda context; `clientContext` is what a synchronous invoke's `ClientContext` decodes to, `timeoutMs` the
 * function's timeout (30 s by default): its deadline counts from the call, as Lambda's does from the invocation.
 */
export function lambdaContext(options: { functionName?: string; clientContext?: ClientContext; timeoutMs?: number } = {}): LambdaContext {
  const functionName = options.functionName ?? 'test-function';
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: '2026/11/24/[$LATEST]0123456789abcdef',
    clientContext: options.clientContext,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** The client context the invoked function sees for a captured Invoke input (as Lambda decodes it). */
export function clientContextFromInvoke(input: InvokeCommandInput): ClientContext | undefined {
  if (!input.ClientContext) return undefined;
  return JSON.parse(Buffer.from(input.ClientContext, 'base64').toString('utf8')) as ClientContext;
}

/** One SNS record as an SNS-triggered function receives it; `attributes` are string message attributes. */
export function snsRecord(options: { message?: string; attributes?: Record<string, string>; topic?: string } = {}): SNSEventRecord {
  const { message = '{}', attributes = {}, topic = 'order-events' } = options;
  return {
    EventVersion: '1.0',
    EventSubscriptionArn: `arn:aws:sns:${REGION}:${ACCOUNT}:${topic}:${randomUUID()}`,
    EventSource: 'aws:sns',
    Sns: {
      SignatureVersion: '1',
      Timestamp: new Date().toISOString(),
      Signature: '',
      SigningCertUrl: '',
      MessageId: randomUUID(),
      Message: message,
      MessageAttributes: Object.fromEntries(Object.entries(attributes).map(([name, Value]) => [name, { Type: 'String', Value }])),
      Type: 'Notification',
      UnsubscribeUrl: '',
      TopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:${topic}`,
      Subject: '',
    },
  };
}

/** The SQS message body SNS delivers to a subscribed queue without raw message delivery. */
export function snsEnvelopeBody(message: string, attributes: Record<string, string> = {}, topic = 'order-events'): string {
  return JSON.stringify({
    Type: 'Notification',
    MessageId: randomUUID(),
    TopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:${topic}`,
    Message: message,
    Timestamp: new Date().toISOString(),
    MessageAttributes: Object.fromEntries(Object.entries(attributes).map(([name, Value]) => [name, { Type: 'String', Value }])),
  });
}

export function eventBridgeEvent<D>(detail: D, detailType = 'OrderPlaced'): EventBridgeEvent<string, D> {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': detailType,
    source: 'orders',
    account: ACCOUNT,
    time: new Date().toISOString(),
    region: REGION,
    resources: [],
    detail,
  };
}

export interface KinesisRecordOptions {
  /** The record's data as the producer wrote it (bytes, or a string taken as UTF-8); Lambda delivers it base64-encoded. */
  data?: Uint8Array | string;
  /** Shorthand for the context our producers write into a JSON object's data (as its `traceparent`). */
  traceparent?: string;
  partitionKey?: string;
  /** A Kinesis sequence number (digits); a new increasing one by default. */
  sequenceNumber?: string;
  shardId?: string;
  streamName?: string;
}

let nextSequenceNumber = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n;

/** One Kinesis record as Lambda delivers it to a stream's consumer. */
export function kinesisRecord(options: KinesisRecordOptions = {}): KinesisStreamRecord {
  const { data = '{}', partitionKey = 'order-1', shardId = 'shardId-000000000000', streamName = 'order-events' } = options;
  const sequenceNumber = options.sequenceNumber ?? String(nextSequenceNumber++);
  const bytes = Buffer.from(data);
  const written = options.traceparent ? withTraceMember(bytes, { traceparent: options.traceparent }) : bytes;
  if (!written) throw new TypeError('kinesisRecord: a traceparent needs data that is a JSON object');
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey,
      sequenceNumber,
      data: written.toString('base64'),
      approximateArrivalTimestamp: Date.now() / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${shardId}:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: `arn:aws:iam::${ACCOUNT}:role/consumer-role`,
    awsRegion: REGION,
    eventSourceARN: `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${streamName}`,
  };
}

export function kinesisEvent(records: KinesisStreamRecord[]): KinesisStreamEvent {
  return { Records: records };
}

/** The record a stream's consumer receives for a captured PutRecord input (or a PutRecords entry and its stream). */
export function kinesisRecordFromPutRecord(
  input: PutRecordCommandInput | (PutRecordsRequestEntry & { StreamName?: string }),
  options: KinesisRecordOptions = {},
): KinesisStreamRecord {
  return kinesisRecord({
    streamName: input.StreamName,
    partitionKey: input.PartitionKey,
    ...options,
    data: input.Data ?? new Uint8Array(),
  });
}

/**
 * The event a Task state gives the function it invokes, for a captured StartExecution (or StartSyncExecution) input:
 * the whole execution input (`"Payload.$": "$"`), or with `members` the state's `Parameters` picking those members
 * out of it, the trace member beside them (`"traced_lambda_trace.$": "$.traced_lambda_trace"`), as a state that
 * passes the context on does. An execution started without input gets `{}`, as Step Functions gives it. A member
 * the input lacks throws, as Step Functions fails such a state (States.Runtime).
 */
export function stepFunctionsTaskEventFromStartExecution<E = Record<string, unknown>>(
  input: Pick<StartExecutionCommandInput | StartSyncExecutionCommandInput, 'input'>,
  options: { members?: string[] } = {},
): E {
  const executionInput: unknown = JSON.parse(input.input ?? '{}');
  if (!options.members) return executionInput as E;
  const fields = (executionInput !== null && typeof executionInput === 'object' && !Array.isArray(executionInput) ? executionInput : {}) as Record<
    string,
    unknown
  >;
  const picked: Record<string, unknown> = {};
  for (const name of [STEP_FUNCTIONS_TRACE_MEMBER, ...options.members]) {
    if (!Object.hasOwn(fields, name))
      throw new Error(`States.Runtime: the JSONPath '$.${name}' could not be found in the execution input ${input.input ?? '{}'}`);
    picked[name] = fields[name];
  }
  return picked as E;
}

/** An item's attributes as the SDK takes them (`{ S: 'o-1' }`…) or as a stream record delivers them. */
type ItemImage = Record<string, object>;

export interface DynamoDbStreamRecordOptions {
  eventName?: 'INSERT' | 'MODIFY' | 'REMOVE';
  /** The item after the write (INSERT, MODIFY); a captured PutItem input's `Item` as it is. */
  newImage?: ItemImage;
  /** The item before the write (MODIFY, REMOVE). */
  oldImage?: ItemImage;
  /** The item's key attributes (default: the `pk` of whichever image is given, or `{ pk: { S: 'order-1' } }`). */
  keys?: ItemImage;
  /** A stream sequence number (digits); a new increasing one by default. */
  sequenceNumber?: string;
  tableName?: string;
}

let nextStreamSequenceNumber = 100_000_000_000_000_000_000n;

/**
 * One DynamoDB stream record as Lambda delivers it (stream view type NEW_AND_OLD_IMAGES). Binary values are given as
 * the stream delivers them, base64 strings.
 */
export function dynamoDbStreamRecord(options: DynamoDbStreamRecordOptions = {}): DynamoDBRecord {
  const { eventName = 'INSERT', newImage, oldImage, tableName = 'orders' } = options;
  const image = newImage ?? oldImage;
  const keys = options.keys ?? (image && 'pk' in image ? { pk: image.pk } : { pk: { S: 'order-1' } });
  const sequenceNumber = options.sequenceNumber ?? String(nextStreamSequenceNumber++);
  const stream: NonNullable<DynamoDBRecord['dynamodb']> = {
    ApproximateCreationDateTime: Math.floor(Date.now() / 1000),
    Keys: keys as NonNullable<DynamoDBRecord['dynamodb']>['Keys'],
    SequenceNumber: sequenceNumber,
    SizeBytes: 128,
    StreamViewType: 'NEW_AND_OLD_IMAGES',
  };
  if (newImage) stream.NewImage = newImage as NonNullable<DynamoDBRecord['dynamodb']>['NewImage'];
  if (oldImage) stream.OldImage = oldImage as NonNullable<DynamoDBRecord['dynamodb']>['OldImage'];
  return {
    eventID: randomUUID().replaceAll('-', ''),
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: REGION,
    dynamodb: stream,
    eventSourceARN: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${tableName}/stream/2026-01-01T00:00:00.000`,
  };
}

export function dynamoDbStreamEvent(records: DynamoDBRecord[]): DynamoDBStreamEvent {
  return { Records: records };
}
