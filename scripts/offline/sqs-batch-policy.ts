/**
 * The decisions of Lambda's SQS event source mapping that need no queue and no function, kept apart so that they
 * can be tested alone: when a batch is ready, what Lambda sends for a received message, and which messages a
 * finished invocation deletes and which it leaves to come back after their visibility timeout.
 *
 * References (AWS Lambda Developer Guide):
 * - https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html (the event shape)
 * - https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html (batch size, batching window)
 * - https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html (retries, partial batch responses)
 */
import type { Message } from '@aws-sdk/client-sqs';
import type { SQSMessageAttributes, SQSRecord, SQSRecordAttributes } from 'aws-lambda';

/** One ReceiveMessage call returns at most this many messages. */
export const SQS_RECEIVE_MAX = 10;

export interface BatchingSettings {
  batchSize: number;
  /** The batching window, in milliseconds (0: invoke as soon as there are records). */
  windowMs: number;
}

/**
 * Lambda invokes once the batch is full or the batching window, counted from the batch's first record, has
 * elapsed, whichever comes first (services-sqs-configure: "Batching behavior").
 */
export function batchIsReady(size: number, firstRecordAt: number | undefined, now: number, { batchSize, windowMs }: BatchingSettings): boolean {
  if (size === 0 || firstRecordAt === undefined) return false;
  return size >= batchSize || now - firstRecordAt >= windowMs;
}

/** How many messages the next ReceiveMessage call may take for the batch being assembled. */
export function nextReceiveCount(size: number, batchSize: number): number {
  return Math.max(0, Math.min(SQS_RECEIVE_MAX, batchSize - size));
}

/** The record Lambda puts in `event.Records` for a received message (with-sqs: "Example standard queue message event"). */
export function toLambdaRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const attributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.Attributes ?? {})) {
    // The emulator writes an empty first-receive time before a first receive; Lambda's records never carry one.
    if (typeof value === 'string' && value !== '') attributes[name] = value;
  }
  const messageAttributes: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') } : {}),
      stringListValues: value.StringListValues ?? [],
      binaryListValues: (value.BinaryListValues ?? []).map((item) => Buffer.from(item).toString('base64')),
      dataType: value.DataType ?? 'String',
    };
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: attributes as unknown as SQSRecordAttributes,
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/** What an invocation of the function gave back. */
export interface InvocationResult {
  /** Set when the function threw, timed out or could not be invoked: the whole batch failed. */
  functionError?: string;
  /** The function's response, parsed (undefined when it returned nothing). */
  payload?: unknown;
}

export interface BatchSettlement {
  /** Message ids to delete: processed. */
  done: string[];
  /** Message ids left in flight: they return to the queue once their visibility timeout ends, and are received again. */
  retried: string[];
  /** Why the whole batch is retried, when it is. */
  reason?: string;
}

/**
 * Which records of a finished batch are deleted (services-sqs-errorhandling):
 * - a thrown error or a timeout fails the whole batch;
 * - without `ReportBatchItemFailures`, a response is a success for the whole batch;
 * - with it, a null or empty response or `batchItemFailures` is a complete success; an `itemIdentifier` that is
 *   empty, null, missing or not a message of the batch fails the whole batch; otherwise only the reported records
 *   stay;
 * - FIFO: a failed record holds back the records after it in its message group ("your function should stop
 *   processing messages after the first failure and return all failed and unprocessed messages"), so that the
 *   group keeps its order; they are retried with it even when the function did not report them.
 */
export function settleBatch(records: SQSRecord[], result: InvocationResult, options: { reportBatchItemFailures: boolean; fifo: boolean }): BatchSettlement {
  const ids = records.map((record) => record.messageId);
  const whole = (reason: string): BatchSettlement => ({ done: [], retried: ids, reason });
  if (result.functionError) return whole(`the function failed (${result.functionError})`);
  if (!options.reportBatchItemFailures) return { done: ids, retried: [] };

  const reported = reportedFailures(result.payload, new Set(ids));
  if (typeof reported === 'string') return whole(reported);
  if (options.fifo) {
    const heldGroups = new Set<string>();
    for (const record of records) {
      const group = record.attributes?.MessageGroupId;
      if (group === undefined) continue;
      if (heldGroups.has(group)) reported.add(record.messageId);
      else if (reported.has(record.messageId)) heldGroups.add(group);
    }
  }
  return { done: ids.filter((id) => !reported.has(id)), retried: ids.filter((id) => reported.has(id)) };
}

/** The reported message ids, or why the response fails the whole batch. */
function reportedFailures(payload: unknown, batch: Set<string>): Set<string> | string {
  const failures = typeof payload === 'object' && payload !== null ? (payload as { batchItemFailures?: unknown }).batchItemFailures : undefined;
  const reported = new Set<string>();
  if (failures === undefined || failures === null) return reported;
  if (!Array.isArray(failures)) return 'batchItemFailures is not a list';
  for (const failure of failures) {
    const id: unknown = typeof failure === 'object' && failure !== null ? (failure as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    if (typeof id !== 'string' || id === '') return `an itemIdentifier is ${JSON.stringify(id ?? null)}`;
    if (!batch.has(id)) return `itemIdentifier ${JSON.stringify(id)} is no message of the batch`;
    reported.add(id);
  }
  return reported;
}
