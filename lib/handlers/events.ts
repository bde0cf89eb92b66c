import { SpanKind } from '@opentelemetry/api';
import type { EventBridgeEvent, SNSEvent, SNSEventRecord } from 'aws-lambda';
import type { InboundPolicy } from '../propagation/inbound-policy';
import { traceInvocation, type EntrySpanDescription, type LambdaFn } from '../invocation/invocation';
import { traceRecordBatch, type RecordBatchSource } from '../invocation/record-batch';
import { FAAS_TRIGGER } from '../semconv';
import { describeEventBridgeSpan, extractParentFromEventBridgeEvent } from '../carriers/eventbridge-detail';
import { addSnsSpanAttributes, extractParentFromSnsRecord, setSnsRecordAttributes, snsSpanName, snsTopicOf } from '../carriers/sns-message-attributes';

export interface EventHandlerOptions {
  /** What to do with the publisher's trace context (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/**
 * SNS records for the record-batch lifecycle: CONSUMER `process <topic>`, the parent from the message attributes.
 * SNS has no partial batch response: the first failure ends the batch and is rethrown.
 */
const snsRecords: RecordBatchSource<SNSEventRecord> = {
  extractParent: extractParentFromSnsRecord,
  destination: snsTopicOf,
  spanName: snsSpanName,
  addSpanAttributes: addSnsSpanAttributes,
  setRecordAttributes: setSnsRecordAttributes,
};

/**
 * Wraps a per-record handler for an SNS-triggered function: one CONSUMER `process <topic>` span per record,
 * the child of the publisher's context in the message attributes. An error is rethrown unchanged after its
 * span is closed and flushed (SNS then retries the delivery).
 */
export function traceSnsRecords(
  handleRecord: (record: SNSEventRecord, context: Parameters<LambdaFn<SNSEvent, void>>[1]) => Promise<void>,
  options: EventHandlerOptions = {},
): LambdaFn<SNSEvent, void> {
  return traceRecordBatch(snsRecords, handleRecord, options) as LambdaFn<SNSEvent, void>;
}

/**
 * Wraps an EventBridge-triggered handler: one CONSUMER `process <detail-type>` span, the child of the context
 * the producer put in `detail` (`traceparent`/`tracestate`, see `currentTraceHeaders`). Results and errors pass
 * through unchanged.
 */
export function traceEventBridgeHandler<D, R>(
  handler: LambdaFn<EventBridgeEvent<string, D>, R>,
  options: EventHandlerOptions = {},
): LambdaFn<EventBridgeEvent<string, D>, R> {
  return traceInvocation(eventBridgeEntrySpan(options), handler);
}

/** The CONSUMER span of one EventBridge event: `process <detail-type>`, its parent from `detail`. */
function eventBridgeEntrySpan<D>(options: EventHandlerOptions): EntrySpanDescription<EventBridgeEvent<string, D>> {
  return {
    trigger: FAAS_TRIGGER.pubsub,
    describe(event, _lambdaContext, attributes) {
      return {
        name: describeEventBridgeSpan(event as EventBridgeEvent<string, unknown>, attributes),
        kind: SpanKind.CONSUMER,
        attributes,
        lookup: extractParentFromEventBridgeEvent(event as EventBridgeEvent<string, unknown>),
        inbound: options.inbound,
      };
    },
  };
}
