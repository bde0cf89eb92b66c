export { readTelemetryConfig, type TelemetryConfig, type TracesExporterName } from './config';
export { getTelemetry, startTelemetry, type StartTelemetryOptions, type Telemetry } from './telemetry';
export { PARENT_SOURCE, type ParentLookup, type ParentSource } from './propagation/parent-lookup';
export { extractParentFromHttpEvent } from './carriers/http-headers';
export { extractParentFromSqsRecord, injectIntoSqsMessage } from './carriers/sqs';
export { extractParentFromSnsRecord } from './carriers/sns-message-attributes';
export { extractParentFromInvoke, injectIntoInvokeInput } from './carriers/lambda-invoke';
export type { InboundPolicy } from './propagation/inbound-policy';
export type { LambdaFn } from './invocation/invocation';
export { traceHttpHandler, type HttpHandlerOptions } from './handlers/http';
export { traceSqsRecords, type SqsBatchStrategy, type SqsHandlerOptions, type SqsRecordHandler } from './handlers/sqs';
export { traceInvokeHandler, type InvokeHandlerOptions } from './handlers/invoke';
export { traceEventBridgeHandler, traceSnsRecords, type EventHandlerOptions } from './handlers/events';
export { tracingMiddleware, type MiddlewareRequest, type TracingMiddleware, type TracingMiddlewareOptions } from './middy';
export { withSpan } from './child-span';
export type { ForwardOptions } from './forward/parent';
export { sendMessage, sendMessageBatch } from './forward/sqs';
export { invokeFunction } from './forward/lambda';
export { tracedFetch } from './forward/http';
export {
  continueFromPayload,
  currentTraceHeaders,
  currentTracePayload,
  extractParentFromEventBridgeEvent,
  traceLogFields,
  type TracePayload,
} from './propagation/trace-payload';
export { startRun, type Run } from './run';
