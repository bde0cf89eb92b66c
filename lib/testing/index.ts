export { captureSpans, MemorySpanExporter, type SpanCapture } from './span-capture';
export { traceShape, type SpanShape } from './trace-shape';
export {
  albEvent,
  apiGatewayV1Event,
  apiGatewayV2Event,
  clientContextFromInvoke,
  eventBridgeEvent,
  functionUrlEvent,
  lambdaContext,
  snsEnvelopeBody,
  snsRecord,
  sqsEvent,
  sqsRecord,
  sqsRecordFromSendMessage,
  stringAttribute,
  type HttpRequestOptions,
  type SqsRecordOptions,
} from './events';
export { responseStream, TestResponseStream } from './response-stream';
