import { context, diag, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type {
  MessageAttributeValue,
  MessageSystemAttributeValue,
  SendMessageBatchCommandInput,
  SendMessageBatchCommandOutput,
  SendMessageCommandInput,
  SendMessageCommandOutput,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { loadSqsCommands } from './aws-sdk';
import { SQS_MAX_MESSAGE_ATTRIBUTES, sqsSendAttributesSetter } from '../carriers/sqs-message-attributes';
import { formatXRayTraceHeader } from '../carriers/xray-trace-header';
import { recordFailure } from '../span-outcome';
import { addSqsSpanAttributes, sqsSpanName } from '../messaging';
import { ATTR_ERROR_TYPE, ATTR_MESSAGING_BATCH_MESSAGE_COUNT, ATTR_MESSAGING_MESSAGE_ID } from '../semconv';
import { getTelemetry } from '../telemetry';
import { forwardParentContext, runOutgoingCall, type ForwardOptions } from './parent';

/** The part of a SendMessage (or SendMessageBatch entry) input that carries a trace context. */
export interface SqsMessageCarrier {
  MessageAttributes?: Record<string, MessageAttributeValue>;
  MessageSystemAttributes?: Record<string, MessageSystemAttributeValue>;
}

let reportedAttributeLimit = false;

/**
 * Returns a copy of a message input that carries the trace context of `ctx`: as `traceparent`/`tracestate`
 * message attributes (the caller's attributes kept), or, when those would push the message past SQS's limit
 * of 10 attributes, in the `AWSTraceHeader` system attribute, which does not count toward it (a `Lineage`
 * field already there is kept). The send never fails because of tracing.
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
export async function sendMessage(client: SQSClient, input: SendMessageCommandInput, options?: ForwardOptions): Promise<SendMessageCommandOutput> {
  const queue = queueNameFromUrl(input.QueueUrl);
  return runOutgoingCall({
    name: sqsSpanName('send', queue),
    kind: SpanKind.PRODUCER,
    attributes: addSqsSpanAttributes({}, 'send', queue),
    options,
    send: (callContext) => client.send(new (loadSqsCommands().SendMessageCommand)(injectIntoSqsMessage(input, callContext))),
    onResult: (span, output) => {
      if (output?.MessageId) span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, output.MessageId);
    },
  });
}

/**
 * Sends a batch with a CLIENT `send <queue>` span around the call and one PRODUCER `create <queue>` span per
 * entry, whose own context that entry carries: each message continues its own branch of the trace. Entries
 * that SQS reports failed get an ERROR span. The SDK's result and errors pass through unchanged.
 */
export async function sendMessageBatch(
  client: SQSClient,
  input: SendMessageBatchCommandInput,
  options?: ForwardOptions,
): Promise<SendMessageBatchCommandOutput> {
  const { tracer } = getTelemetry();
  const queue = queueNameFromUrl(input.QueueUrl);
  const entries = input.Entries ?? [];
  const parent = forwardParentContext(options);
  const batchSpan = tracer.startSpan(
    sqsSpanName('send', queue),
    {
      kind: SpanKind.CLIENT,
      attributes: addSqsSpanAttributes({ [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: entries.length }, 'send', queue),
    },
    parent,
  );
  const batchContext = trace.setSpan(parent, batchSpan);
  const entrySpans = new Map<string | undefined, Span>();
  const tracedEntries = entries.map((entry) => {
    const span = tracer.startSpan(
      sqsSpanName('create', queue),
      { kind: SpanKind.PRODUCER, attributes: addSqsSpanAttributes({}, 'create', queue) },
      batchContext,
    );
    entrySpans.set(entry.Id, span);
    return injectIntoSqsMessage(entry, trace.setSpan(batchContext, span));
  });
  try {
    const output = await context.with(batchContext, () => client.send(new (loadSqsCommands().SendMessageBatchCommand)({ ...input, Entries: tracedEntries })));
    for (const sent of output?.Successful ?? []) {
      if (sent.MessageId) entrySpans.get(sent.Id)?.setAttribute(ATTR_MESSAGING_MESSAGE_ID, sent.MessageId);
    }
    for (const failed of output?.Failed ?? []) {
      const span = entrySpans.get(failed.Id);
      span?.setStatus({ code: SpanStatusCode.ERROR, message: failed.Message ?? failed.Code });
      if (failed.Code) span?.setAttribute(ATTR_ERROR_TYPE, failed.Code);
    }
    if ((output?.Failed?.length ?? 0) > 0) batchSpan.setStatus({ code: SpanStatusCode.ERROR, message: 'some entries failed' });
    return output;
  } catch (error) {
    recordFailure(batchSpan, error);
    for (const span of entrySpans.values()) recordFailure(span, error);
    throw error;
  } finally {
    for (const span of entrySpans.values()) span.end();
    batchSpan.end();
  }
}

/** https://sqs.region.amazonaws.com/123456789012/orders → orders */
function queueNameFromUrl(queueUrl: string | undefined): string | undefined {
  if (!queueUrl) return undefined;
  const segments = queueUrl.split('?')[0].split('/').filter(Boolean);
  return segments.length > 1 ? segments[segments.length - 1] : undefined;
}
