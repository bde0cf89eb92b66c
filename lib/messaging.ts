import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_AWS_SQS,
} from './semconv';

/** Adds the messaging attributes every SQS span carries, producer or consumer side, to `attributes`. */
export function addSqsSpanAttributes(attributes: Attributes, operation: 'send' | 'create' | 'process', queue: string | undefined): Attributes {
  attributes[ATTR_MESSAGING_SYSTEM] = MESSAGING_SYSTEM_AWS_SQS;
  attributes[ATTR_MESSAGING_OPERATION_TYPE] = operation;
  attributes[ATTR_MESSAGING_OPERATION_NAME] = operation;
  if (queue) attributes[ATTR_MESSAGING_DESTINATION_NAME] = queue;
  return attributes;
}

/** The span name the messaging conventions give: `{operation} {destination}`. */
export function sqsSpanName(operation: 'send' | 'create' | 'process', queue: string | undefined): string {
  return queue ? `${operation} ${queue}` : operation;
}
