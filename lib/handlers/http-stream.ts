import { context, diag, type Span } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import type { HttpEvent } from '../carriers/http-headers';
import { entryContext } from '../invocation/entry-context';
import { beginInvocation, endInvocation, startInvocation, type BegunInvocation, type StartedInvocation } from '../invocation/invocation';
import { startAheadOfFirstInvocation } from '../telemetry';
import { endSpan, recordFailure } from '../invocation/span-outcome';
import {
  awsLambdaGlobal,
  readHttpResponseMetadata,
  watchStreamEnd,
  type ResponseStream,
  type StreamEnd,
  type StreamEndWatch,
  type StreamingLambdaFn,
} from '../response-stream';
import { httpEntrySpan, recordHttpResponse, type HttpHandlerOptions } from './http';

/**
 * Wraps a response-streaming handler (a Function URL with `InvokeMode: RESPONSE_STREAM`, API Gateway response
 * streaming): the same SERVER span as `traceHttpHandler` (name, attributes, the caller's `traceparent`), ended
 * when the response stream ends, not when the handler's promise settles: a handler may return while the stream
 * is still written (a pipeline left running). The status code is the one the handler gave `httpResponseStream`
 * (or `awslambda.HttpResponseStream.from`), 200 without one; a stream that fails, or closes before it finished,
 * ends the span in error. The invocation ends (its spans exported, or handed to the after-response extension)
 * once the stream has ended. The handler is marked for streaming with `awslambda.streamifyResponse` when Lambda's
 * runtime provides it; elsewhere (tests, `invoke local`) the wrapped function is returned as is.
 */
export interface HttpStreamHandlerOptions extends HttpHandlerOptions {
  /** The response stream's buffer size in bytes, given to `awslambda.streamifyResponse` (the runtime's default otherwise). */
  highWaterMark?: number;
}

export function traceHttpStreamHandler<E extends HttpEvent>(handler: StreamingLambdaFn<E>, options: HttpStreamHandlerOptions = {}): StreamingLambdaFn<E> {
  const description = httpEntrySpan(options);
  startAheadOfFirstInvocation();
  const traced: StreamingLambdaFn<E> = (event, responseStream, lambdaContext) => {
    const begun = beginInvocation(lambdaContext);
    const started = begun && startInvocation(description, event, lambdaContext);
    return runStreaming(begun, started, responseStream, lambdaContext, () => handler(event, responseStream, lambdaContext));
  };
  const streamify = awsLambdaGlobal()?.streamifyResponse;
  if (!streamify) return traced;
  return options.highWaterMark === undefined ? streamify(traced) : streamify(traced, { highWaterMark: options.highWaterMark });
}

/**
 * Runs the handler (in the entry span when tracing started), then waits for the response stream to end before
 * ending the span and the invocation. A handler that rejects while the stream is still open ends both at once:
 * the runtime ends the stream with the error only once the rejection reaches it, so waiting would never end.
 */
async function runStreaming(
  begun: BegunInvocation | undefined,
  started: StartedInvocation | undefined,
  stream: ResponseStream,
  lambdaContext: LambdaContext,
  run: () => Promise<void>,
): Promise<void> {
  // Listening from before the handler runs: a stream it ends at once still counts.
  const watch = watchSafely(stream);
  let rejected = false;
  let thrown: unknown;
  try {
    await (started ? context.with(entryContext(started.parentContext, started.span), run) : run());
  } catch (error) {
    rejected = true;
    thrown = error;
  }
  let end: StreamEnd | undefined;
  if (rejected) watch?.stop();
  else end = await watch?.ended;
  if (started) recordStreamOutcome(started.span, stream, end, rejected, thrown);
  const exporting = endInvocation(begun, lambdaContext);
  // A failed stream has failed the runtime's own promise for the response, which the runtime awaits only once this
  // handler's promise settles: waiting for an export first would leave that rejection unhandled, and end the process.
  if (exporting && end?.finished !== false) await exporting;
  if (rejected) throw thrown;
}

/**
 * The response's status code, from its metadata prelude (200 for a finished stream without one), then the failure
 * when the handler rejected or the stream failed: a failed stream may have sent its status before it broke.
 */
function recordStreamOutcome(span: Span, stream: ResponseStream, end: StreamEnd | undefined, rejected: boolean, thrown: unknown): void {
  if (span.isRecording()) {
    const metadata = readHttpResponseMetadata(stream);
    if (metadata || (!rejected && end?.finished !== false)) recordHttpResponse(span, metadata);
    if (rejected) recordFailure(span, thrown);
    else if (end && !end.finished) recordFailure(span, end.error);
  }
  endSpan(span);
}

/** The watch on the stream's end, or none when the object given as the stream cannot be listened to. */
function watchSafely(stream: ResponseStream): StreamEndWatch | undefined {
  try {
    return watchStreamEnd(stream);
  } catch (error) {
    diag.debug('traced-lambda: the response stream cannot be watched; the span ends when the handler settles', error);
    return undefined;
  }
}
