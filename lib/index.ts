export { readTelemetryConfig, type TelemetryConfig, type TracesExporterName } from './config';
export { getTelemetry, startTelemetry, type StartTelemetryOptions, type Telemetry } from './telemetry';
export {
  extractParentFromHttpEvent,
  extractParentFromInvokeContext,
  extractParentFromSqsRecord,
  PARENT_SOURCE,
  type ParentLookup,
  type ParentSource,
} from './extract';
export type { LambdaFn } from './invocation';
export { traceHttpHandler } from './handlers/http';
export { traceSqsRecords, type SqsRecordHandler } from './handlers/sqs';
export { traceInvokeHandler } from './handlers/invoke';
export { withSpan } from './child-span';
export { injectIntoSqsMessage, sendMessage } from './forward/sqs';
export { injectIntoInvokeInput, invokeFunction } from './forward/lambda';
export { currentTracePayload, type TracePayload } from './trace-payload';
