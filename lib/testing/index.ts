export { captureSpans, MemorySpanExporter, type SpanCapture } from './span-capture';
export { traceShape, type SpanShape } from './trace-shape';
export {
  albEvent,
  apiGatewayV1Event,
  apiGatewayV2Event,
  clientContextFromInvoke,
  dynamoDbStreamEvent,
  dynamoDbStreamRecord,
  eventBridgeEvent,
  functionUrlEvent,
  kinesisEvent,
  kinesisRecord,
  kinesisRecordFromPutRecord,
  lambdaContext,
  snsEnvelopeBody,
  snsRecord,
  sqsEvent,
  sqsRecord,
  sqsRecordFromSendMessage,
  stepFunctionsTaskEventFromStartExecution,
  stringAttribute,
  type DynamoDbStreamRecordOptions,
  type HttpRequestOptions,
  type KinesisRecordOptions,
  type SqsRecordOptions,
} from './events';
export { responseStream, TestResponseStream } from './response-stream';
