import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type {
  SendMessageBatchCommandInput,
  SendMessageBatchCommandOutput,
  SendMessageCommandInput,
  SendMessageCommandOutput,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { loadSqsCommands } from './aws-sdk';
import { endSpan, recordFailure } from '../invocation/span-outcome';
import { ATTR_ERROR_TYPE, ATTR_MESSAGING_BATCH_MESSAGE_COUNT, ATTR_MESSAGING_MESSAGE_ID } from '../semconv';
import { getTelemetry } from '../telemetry';
import { forwardParentContext, runOutgoingCall, type ForwardOptions } from './parent';
import { addSqsSpanAttributes, injectIntoSqsMessage, sqsSpanName } from '../carriers/sqs';

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
    for (const span of entrySpans.values()) endSpan(span);
    endSpan(batchSpan);
  }
}

/** https://sqs.region.amazonaws.com/123456789012/orders → orders */
function queueNameFromUrl(queueUrl: string | undefined): string | undefined {
  if (!queueUrl) return undefined;
  const segments = queueUrl.split('?')[0].split('/').filter(Boolean);
  return segments.length > 1 ? segments[segments.length - 1] : undefined;
}
