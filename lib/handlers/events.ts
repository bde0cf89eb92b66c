import { SpanKind } from '@opentelemetry/api';
import type { EventBridgeEvent, SNSEvent, SNSEventRecord } from 'aws-lambda';
import { extractParentFromEventBridgeEvent, extractParentFromSnsRecord } from '../extract';
import type { InboundPolicy } from '../inbound-policy';
import { entryContext } from '../entry-context';
import { beginInvocation, endInvocation, runInvocation, runUntraced, startEntrySpan, startTelemetrySafely, type LambdaFn } from '../invocation';
import { invocationAttributes, takeColdStart } from '../invocation-attributes';
import { runInSpan } from '../span-outcome';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  FAAS_TRIGGER,
  MESSAGING_SYSTEM_AWS_SNS,
} from '../semconv';
import { getTelemetry, type Telemetry } from '../telemetry';

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
  return async (event, lambdaContext) => {
    beginInvocation(lambdaContext);
    const records = Array.isArray(event?.Records) ? event.Records : [];
    const telemetry = startTelemetrySafely(getTelemetry);
    try {
      for (const [index, record] of records.entries()) {
        const started = telemetry ? startTelemetrySafely(() => startSnsRecordSpan(telemetry, record, index, lambdaContext, options)) : undefined;
        if (!started) await handleRecord(record, lambdaContext);
        else await runInSpan(started.span, entryContext(started.parentContext, started.span, started.invocationId), () => handleRecord(record, lambdaContext));
      }
    } finally {
      // One export for the whole invocation, not one per record.
      await endInvocation(telemetry, lambdaContext);
    }
  };
}

function startSnsRecordSpan(
  telemetry: Telemetry,
  record: SNSEventRecord,
  index: number,
  lambdaContext: Parameters<LambdaFn<SNSEvent, void>>[1],
  options: EventHandlerOptions,
) {
  const topic = record.Sns?.TopicArn?.split(':')[5];
  const coldStart = index === 0 && takeColdStart(telemetry.config.lambda.initializationType);
  return startEntrySpan(telemetry, {
    name: topic ? `process ${topic}` : 'process',
    kind: SpanKind.CONSUMER,
    attributes: {
      ...invocationAttributes(lambdaContext, FAAS_TRIGGER.pubsub, coldStart),
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_AWS_SNS,
      [ATTR_MESSAGING_OPERATION_TYPE]: 'process',
      [ATTR_MESSAGING_OPERATION_NAME]: 'process',
      ...(topic ? { [ATTR_MESSAGING_DESTINATION_NAME]: topic } : {}),
      ...(record.Sns?.MessageId ? { [ATTR_MESSAGING_MESSAGE_ID]: record.Sns.MessageId } : {}),
    },
    lookup: extractParentFromSnsRecord(record),
    inbound: options.inbound,
  });
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
  return async (event, lambdaContext) => {
    beginInvocation(lambdaContext);
    const started = startTelemetrySafely(() => {
      const telemetry = getTelemetry();
      const detailType = event?.['detail-type'];
      return startEntrySpan(telemetry, {
        name: detailType ? `process ${detailType}` : 'process',
        kind: SpanKind.CONSUMER,
        attributes: {
          ...invocationAttributes(lambdaContext, FAAS_TRIGGER.pubsub, takeColdStart(telemetry.config.lambda.initializationType)),
          [ATTR_MESSAGING_OPERATION_TYPE]: 'process',
          ...(event?.id ? { [ATTR_MESSAGING_MESSAGE_ID]: event.id } : {}),
        },
        lookup: extractParentFromEventBridgeEvent(event as EventBridgeEvent<string, unknown>),
        inbound: options.inbound,
      });
    });
    if (!started) return runUntraced(() => handler(event, lambdaContext), lambdaContext);
    return runInvocation(started, lambdaContext, () => handler(event, lambdaContext));
  };
}
