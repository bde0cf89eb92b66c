// The SNS hop, as a subscriber sees it: the message attributes read by an SNS-triggered function and from the
// envelope SNS puts in an SQS body, and the names and attributes of an SNS record's span.
import type { SNSEventRecord } from 'aws-lambda';
import { extractWith, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import type { Attributes, TextMapGetter } from '@opentelemetry/api';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_AWS_SNS,
} from '../semconv';

/** SNS message attributes as they appear in an SNS event record and in an SNS envelope delivered to SQS. */
type SnsMessageAttributes = Record<string, { Type?: string; Value?: string } | undefined>;

export const snsAttributesGetter: TextMapGetter<SnsMessageAttributes | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get(carrier, key) {
    const attribute = carrier?.[key];
    return attribute?.Type === 'String' && typeof attribute.Value === 'string' ? attribute.Value : undefined;
  },
};

/**
 * The SNS envelope in an SQS message body (subscription without raw message delivery):
 * `{"Type":"Notification","TopicArn":…,"Message":…,"MessageAttributes":{…}}`; undefined for any other body.
 */
export function snsEnvelopeOf(body: string | undefined): { topicArn?: string; attributes: SnsMessageAttributes } | undefined {
  if (!body || body[0] !== '{' || !body.includes('"Notification"')) return undefined;
  try {
    const parsed = JSON.parse(body) as { Type?: unknown; TopicArn?: unknown; MessageAttributes?: unknown };
    if (parsed.Type !== 'Notification' || parsed.MessageAttributes === null || typeof parsed.MessageAttributes !== 'object') {
      return undefined;
    }
    return {
      topicArn: typeof parsed.TopicArn === 'string' ? parsed.TopicArn : undefined,
      attributes: parsed.MessageAttributes as SnsMessageAttributes,
    };
  } catch {
    return undefined;
  }
}

/** An SNS-triggered function's record: the message attributes. */
export function extractParentFromSnsRecord(record: SNSEventRecord): ParentLookup {
  return extractWith(record?.Sns?.MessageAttributes, snsAttributesGetter, PARENT_SOURCE.snsMessageAttributes);
}

/** An SNS record's topic: arn:aws:sns:region:account:topic → topic. */
export function snsTopicOf(record: SNSEventRecord): string | undefined {
  const arn: unknown = record?.Sns?.TopicArn;
  return typeof arn === 'string' ? arn.split(':')[5] || undefined : undefined;
}

/** The span name of a delivered SNS record, as the messaging conventions give it: `process {topic}`. */
export function snsSpanName(topic: string | undefined): string {
  return topic ? `process ${topic}` : 'process';
}

/** Adds the messaging attributes of a delivered SNS record's span to `attributes`. */
export function addSnsSpanAttributes(attributes: Attributes, topic: string | undefined): Attributes {
  attributes[ATTR_MESSAGING_SYSTEM] = MESSAGING_SYSTEM_AWS_SNS;
  attributes[ATTR_MESSAGING_OPERATION_TYPE] = 'process';
  attributes[ATTR_MESSAGING_OPERATION_NAME] = 'process';
  if (topic) attributes[ATTR_MESSAGING_DESTINATION_NAME] = topic;
  return attributes;
}

/** Sets a delivered SNS record's own attributes on its span's: its topic and message id. */
export function setSnsRecordAttributes(attributes: Attributes, record: SNSEventRecord, topic: string | undefined): void {
  if (topic) attributes[ATTR_MESSAGING_DESTINATION_NAME] = topic;
  else delete attributes[ATTR_MESSAGING_DESTINATION_NAME];
  attributes[ATTR_MESSAGING_MESSAGE_ID] = record?.Sns?.MessageId;
}
