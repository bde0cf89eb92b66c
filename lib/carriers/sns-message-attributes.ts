// SNS message attributes, read by an SNS-triggered function and from the envelope SNS puts in an SQS body.
import type { SNSEventRecord } from 'aws-lambda';
import { extractWith, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import type { TextMapGetter } from '@opentelemetry/api';

/** SNS message attributes as they appear in an SNS event record and in an SNS envelope delivered to SQS. */
export type SnsMessageAttributes = Record<string, { Type?: string; Value?: string } | undefined>;

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
