import { SpanKind } from '@opentelemetry/api';
import type { EventBridgeEvent, SNSEvent, SNSEventRecord } from 'aws-lambda';
import type { InboundPolicy } from '../propagation/inbound-policy';
import {
  beginInvocation,
  endInvocation,
  runInEntrySpan,
  startInvocation,
  traceInvocation,
  type EntrySpanDescription,
  type LambdaFn,
} from '../invocation/invocation';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  FAAS_TRIGGER,
  MESSAGING_SYSTEM_AWS_SNS,
} from '../semconv';
import { extractParentFromEventBridgeEvent } from '../propagation/trace-payload';
import { extractParentFromSnsRecord } from '../carriers/sns-message-attributes';

export interface EventHandlerOptions {
  /** What to do with the publisher's trace context (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
}

/**
 * Wraps a per-record handler for an SNS-triggered function: one CONSUMER `process <topic>` span per record,
 * the child of the publisher's context in the message attributes. An error is rethrown unchanged after its
 * span is closed and flushed (SNS then retries the delivery).
 */
export function traceSnsRecords(
  handleRecord: (record: SNSEventRecord, context: Parameters<LambdaFn<SNSEvent, void>>[1]) => Promise<void>,
  options: EventHandlerOptions = {},
): LambdaFn<SNSEvent, void> {
  const description = snsRecordEntrySpan(options);
  return async (event, lambdaContext) => {
    const begun = beginInvocation(lambdaContext);
    const records = Array.isArray(event?.Records) ? event.Records : [];
    const telemetry = begun?.telemetry;
    try {
      for (const record of records) {
        const started = telemetry ? startInvocation(description, record, lambdaContext) : undefined;
        if (!started) await handleRecord(record, lambdaContext);
        else await runInEntrySpan(started, () => handleRecord(record, lambdaContext));
      }
    } finally {
      // One export for the whole invocation, not one per record.
      await endInvocation(begun, lambdaContext);
    }
  };
}

/** The CONSUMER span of one SNS record: `process <topic>`, its parent from the message attributes. */
function snsRecordEntrySpan(options: EventHandlerOptions): EntrySpanDescription<SNSEventRecord> {
  return {
    trigger: FAAS_TRIGGER.pubsub,
    describe(record, _lambdaContext, attributes) {
      const topic = record.Sns?.TopicArn?.split(':')[5];
      attributes[ATTR_MESSAGING_SYSTEM] = MESSAGING_SYSTEM_AWS_SNS;
      attributes[ATTR_MESSAGING_OPERATION_TYPE] = 'process';
      attributes[ATTR_MESSAGING_OPERATION_NAME] = 'process';
      if (topic) attributes[ATTR_MESSAGING_DESTINATION_NAME] = topic;
      if (record.Sns?.MessageId) attributes[ATTR_MESSAGING_MESSAGE_ID] = record.Sns.MessageId;
      return {
        name: topic ? `process ${topic}` : 'process',
        kind: SpanKind.CONSUMER,
        attributes,
        lookup: extractParentFromSnsRecord(record),
        inbound: options.inbound,
      };
    },
  };
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
      const detailType = event?.['detail-type'];
      attributes[ATTR_MESSAGING_OPERATION_TYPE] = 'process';
      if (event?.id) attributes[ATTR_MESSAGING_MESSAGE_ID] = event.id;
      return {
        name: detailType ? `process ${detailType}` : 'process',
        kind: SpanKind.CONSUMER,
        attributes,
        lookup: extractParentFromEventBridgeEvent(event as EventBridgeEvent<string, unknown>),
        inbound: options.inbound,
      };
    },
  };
}
