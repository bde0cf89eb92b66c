import { context, SpanKind, trace, type Attributes } from '@opentelemetry/api';
import type { Context as LambdaContext, SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { extractParentFromSqsRecord } from '../extract';
import { invocationAttributes, recordFailure, startTelemetrySafely, takeColdStart, type LambdaFn } from '../invocation';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  FAAS_TRIGGER,
  MESSAGING_OPERATION,
  MESSAGING_SYSTEM_AWS_SQS,
} from '../semconv';
import { getTelemetry } from '../telemetry';

/** Handles one SQS record; a rejection marks that record failed (it is retried), the others still succeed. */
export type SqsRecordHandler = (record: SQSRecord, context: LambdaContext) => Promise<void>;

/**
 * Wraps a per-record SQS handler into a batch handler for an event source mapping with
 * `ReportBatchItemFailures`: one CONSUMER `process <queue>` span per record, each the child of the context
 * its producer put in the message attributes (or a new root), and every failed record reported in
 * `batchItemFailures`. On a FIFO queue processing stops at the first failure and the rest of the batch is
 * reported failed too, so that order is kept.
 */
export function traceSqsRecords(handleRecord: SqsRecordHandler): LambdaFn<SQSEvent, SQSBatchResponse> {
  return async (event, lambdaContext) => {
    const records = Array.isArray(event?.Records) ? event.Records : [];
    const batchItemFailures: SQSBatchItemFailure[] = [];
    const telemetry = startTelemetrySafely(getTelemetry);
    const coldStart = startTelemetrySafely(() => takeColdStart(telemetry?.config.lambda.initializationType)) ?? false;
    try {
      for (let index = 0; index < records.length; index++) {
        const record = records[index];
        const failed = await processRecord(record, lambdaContext, coldStart && index === 0, handleRecord);
        if (!failed) continue;
        if (isFifo(record)) {
          batchItemFailures.push(...records.slice(index).map((rest) => ({ itemIdentifier: rest.messageId })));
          break;
        }
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    } finally {
      await telemetry?.flush();
    }
    return { batchItemFailures };
  };
}

/** Runs one record in its own span; returns whether it failed. */
async function processRecord(
  record: SQSRecord,
  lambdaContext: LambdaContext,
  coldStart: boolean,
  handleRecord: SqsRecordHandler,
): Promise<boolean> {
  const started = startTelemetrySafely(() => {
    const parent = extractParentFromSqsRecord(record);
    const queue = queueNameFromArn(record.eventSourceARN);
    const attributes: Attributes = {
      ...invocationAttributes(lambdaContext, FAAS_TRIGGER.pubsub, coldStart),
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_AWS_SQS,
      [ATTR_MESSAGING_OPERATION_TYPE]: MESSAGING_OPERATION.process,
      [ATTR_MESSAGING_OPERATION_NAME]: MESSAGING_OPERATION.process,
      [ATTR_MESSAGING_MESSAGE_ID]: record.messageId,
    };
    if (queue) attributes[ATTR_MESSAGING_DESTINATION_NAME] = queue;
    const span = getTelemetry().tracer.startSpan(
      queue ? `process ${queue}` : 'process',
      { kind: SpanKind.CONSUMER, attributes },
      parent.context,
    );
    return { parent, span };
  });
  try {
    if (!started) {
      await handleRecord(record, lambdaContext);
      return false;
    }
    await context.with(trace.setSpan(started.parent.context, started.span), () => handleRecord(record, lambdaContext));
    return false;
  } catch (error) {
    if (started) recordFailure(started.span, error);
    // The error stops here (the record is reported for retry), so make it visible in the function's log.
    console.error(`SQS message ${record.messageId} failed and is reported in batchItemFailures:`, error);
    return true;
  } finally {
    started?.span.end();
  }
}

/** arn:aws:sqs:region:account:queue-name → queue-name */
export function queueNameFromArn(arn: string | undefined): string | undefined {
  return arn?.split(':')[5] || undefined;
}

function isFifo(record: SQSRecord): boolean {
  return record.eventSourceARN?.endsWith('.fifo') ?? false;
}
