import { context, diag, propagation, SpanKind, trace, type Attributes, type Context } from '@opentelemetry/api';
import {
  SendMessageCommand,
  type MessageAttributeValue,
  type MessageSystemAttributeValue,
  type SendMessageCommandInput,
  type SendMessageCommandOutput,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { SQS_MAX_MESSAGE_ATTRIBUTES, sqsSendAttributesSetter } from '../carriers/sqs-message-attributes';
import { formatXRayTraceHeader } from '../carriers/xray-trace-header';
import { recordFailure } from '../invocation';
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_OPERATION,
  MESSAGING_SYSTEM_AWS_SQS,
} from '../semconv';
import { getTelemetry } from '../telemetry';

/** The part of a SendMessage (or SendMessageBatch entry) input that carries a trace context. */
export interface SqsMessageCarrier {
  MessageAttributes?: Record<string, MessageAttributeValue>;
  MessageSystemAttributes?: Record<string, MessageSystemAttributeValue>;
}

let reportedAttributeLimit = false;

/**
 * Returns a copy of a message input that carries the trace context of `ctx`: as `traceparent`/`tracestate`
 * message attributes (the caller's attributes kept), or, when those would push the message past SQS's limit
 * of 10 attributes, in the `AWSTraceHeader` system attribute, which does not count toward it. The send never
 * fails because of tracing.
 */
export function injectIntoSqsMessage<T extends SqsMessageCarrier>(input: T, ctx: Context): T {
  const ours: Record<string, MessageAttributeValue> = {};
  propagation.inject(ctx, ours, sqsSendAttributesSetter);
  if (Object.keys(ours).length === 0) return input;

  const existing = input.MessageAttributes ?? {};
  const names = new Set([...Object.keys(existing), ...Object.keys(ours)]);
  if (names.size <= SQS_MAX_MESSAGE_ATTRIBUTES) {
    return { ...input, MessageAttributes: { ...existing, ...ours } };
  }

  if (!reportedAttributeLimit) {
    reportedAttributeLimit = true;
    diag.info('traced-lambda: a message has too many attributes for the trace context; using the AWSTraceHeader system attribute.');
  }
  const previous = input.MessageSystemAttributes?.AWSTraceHeader?.StringValue;
  const header = formatXRayTraceHeader(ctx, previous);
  if (!header) return input;
  return {
    ...input,
    MessageSystemAttributes: {
      ...input.MessageSystemAttributes,
      AWSTraceHeader: { DataType: 'String', StringValue: header },
    },
  };
}

/**
 * Sends one message with a PRODUCER `send <queue>` span around the call and the span's context in the
 * message, so the consumer continues the trace. The SDK's result and errors pass through unchanged.
 */
export async function sendMessage(client: SQSClient, input: SendMessageCommandInput): Promise<SendMessageCommandOutput> {
  const queue = queueNameFromUrl(input.QueueUrl);
  const span = getTelemetry().tracer.startSpan(queue ? `send ${queue}` : 'send', {
    kind: SpanKind.PRODUCER,
    attributes: messagingAttributes(queue),
  });
  const spanContext = trace.setSpan(context.active(), span);
  try {
    const output = await context.with(spanContext, () =>
      client.send(new SendMessageCommand(injectIntoSqsMessage(input, spanContext))),
    );
    if (output?.MessageId) span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, output.MessageId);
    return output;
  } catch (error) {
    recordFailure(span, error);
    throw error;
  } finally {
    span.end();
  }
}

export function messagingAttributes(queue: string | undefined): Attributes {
  const attributes: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_AWS_SQS,
    [ATTR_MESSAGING_OPERATION_TYPE]: MESSAGING_OPERATION.send,
    [ATTR_MESSAGING_OPERATION_NAME]: MESSAGING_OPERATION.send,
  };
  if (queue) attributes[ATTR_MESSAGING_DESTINATION_NAME] = queue;
  return attributes;
}

/** https://sqs.region.amazonaws.com/123456789012/orders → orders */
export function queueNameFromUrl(queueUrl: string | undefined): string | undefined {
  if (!queueUrl) return undefined;
  const segments = queueUrl.split('?')[0].split('/').filter(Boolean);
  return segments.length > 1 ? segments[segments.length - 1] : undefined;
}
