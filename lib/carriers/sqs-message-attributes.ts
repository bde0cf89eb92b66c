import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';
import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { SQSMessageAttributes } from 'aws-lambda';

/** SQS allows at most this many message attributes on one message. */
export const SQS_MAX_MESSAGE_ATTRIBUTES = 10;

/** Reads string message attributes of a received SQS record (`record.messageAttributes`). */
export const sqsRecordAttributesGetter: TextMapGetter<SQSMessageAttributes | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get(carrier, key) {
    const attribute = findAttribute(carrier, key);
    if (!attribute || typeof attribute.stringValue !== 'string') return undefined;
    return attribute.dataType === 'String' || attribute.dataType?.startsWith('String.') ? attribute.stringValue : undefined;
  },
};

/** Attribute names are case-sensitive in SQS; a producer that wrote `TraceParent` is still understood. */
function findAttribute(carrier: SQSMessageAttributes | undefined, key: string) {
  if (!carrier) return undefined;
  const exact = carrier[key];
  if (exact) return exact;
  for (const name in carrier) {
    if (name.length === key.length && name.toLowerCase() === key) return carrier[name];
  }
  return undefined;
}

/** Writes string message attributes into a SendMessage / SendMessageBatch entry's `MessageAttributes`. */
export const sqsSendAttributesSetter: TextMapSetter<Record<string, MessageAttributeValue>> = {
  set(carrier, key, value) {
    carrier[key] = { DataType: 'String', StringValue: value };
  },
};
