// A streaming function's response stream, as Lambda's runtime gives it to the handler (`awslambda.streamifyResponse`):
// when it has ended, and the HTTP metadata (status code, headers) written before its body.
import type { Writable } from 'node:stream';
import type { Context as LambdaContext } from 'aws-lambda';

/** Writes one chunk to the stream itself, before the body: what `_onBeforeFirstWrite` is given. */
type RawWrite = (chunk: string | Uint8Array) => void;

/**
 * The response stream a streaming handler writes its response to. Under Lambda it is the runtime interface
 * client's request to the Runtime API; in tests, `responseStream()` from the test kit. Besides Writable's
 * methods, the runtime's stream has a content type to set before the first write, and a hook run once before the
 * first chunk is written (`awslambda.HttpResponseStream.from` puts the HTTP metadata prelude there).
 */
export type ResponseStream = Writable & {
  setContentType(contentType: string): void;
  _onBeforeFirstWrite?: (write: RawWrite) => void;
};

/** A streaming handler: it answers by writing to `responseStream` and ending it; its promise carries no result. */
export type StreamingLambdaFn<E> = (event: E, responseStream: ResponseStream, lambdaContext: LambdaContext) => Promise<void>;

/** The HTTP response's metadata, written before the body: Function URLs and API Gateway read it from the prelude. */
export interface HttpResponseMetadata {
  statusCode?: number;
  headers?: Record<string, string>;
  cookies?: string[];
}

/** The content type that tells Lambda the stream opens with an HTTP metadata prelude. */
export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
/** The prelude's JSON is followed by eight zero bytes, then the body. */
const PRELUDE_DELIMITER_BYTES = 8;

/** The runtime's `awslambda` global, when the function runs in Lambda's runtime (absent in tests and offline). */
interface AwsLambdaGlobal {
  streamifyResponse?: <F>(handler: F, options?: { highWaterMark?: number }) => F;
  HttpResponseStream?: { from(stream: Writable, metadata: HttpResponseMetadata): Writable };
}

export function awsLambdaGlobal(): AwsLambdaGlobal | undefined {
  return (globalThis as { awslambda?: AwsLambdaGlobal }).awslambda;
}

/**
 * Sets the HTTP status code, headers and cookies of a streamed response: before the body is written, as
 * `awslambda.HttpResponseStream.from(stream, metadata)` does (which it calls under Lambda's runtime). Outside it
 * (tests, `invoke local`), it writes the same prelude itself, so the handler's code runs unchanged everywhere.
 */
export function httpResponseStream<S extends ResponseStream>(stream: S, metadata: HttpResponseMetadata): S {
  const runtime = awsLambdaGlobal()?.HttpResponseStream;
  if (runtime) return runtime.from(stream, metadata) as S;
  stream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
  const prelude = JSON.stringify(metadata);
  stream._onBeforeFirstWrite = (write) => {
    write(prelude);
    write(new Uint8Array(PRELUDE_DELIMITER_BYTES));
  };
  return stream;
}

/**
 * The metadata the handler gave the stream (`HttpResponseStream.from`), read back from the prelude hook without
 * writing anything: the hook is called with a write that only collects. Undefined when there is none, or it is
 * not the JSON prelude this expects.
 */
export function readHttpResponseMetadata(stream: ResponseStream): HttpResponseMetadata | undefined {
  try {
    const hook = stream._onBeforeFirstWrite;
    if (typeof hook !== 'function') return undefined;
    let first: string | Uint8Array | undefined;
    hook((chunk) => (first ??= chunk));
    const text = typeof first === 'string' ? first : first instanceof Uint8Array ? Buffer.from(first).toString('utf8') : undefined;
    const parsed: unknown = text === undefined ? undefined : JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' ? (parsed as HttpResponseMetadata) : undefined;
  } catch {
    return undefined;
  }
}

/** Raised on a span whose response stream closed before all of it was written (destroyed, or its client went). */
export class ResponseStreamClosedError extends Error {
  override name = 'ResponseStreamClosedError';
  constructor() {
    super('the response stream closed before it finished: it was destroyed, or the connection to the client was lost');
  }
}

/** How a response stream ended: finished (every byte handed on), or failed with the stream's error. */
export type StreamEnd = { finished: true } | { finished: false; error: unknown };

/** A watch on one stream's end: `ended` settles once (never rejects); `stop()` takes the watch's listeners off. */
export interface StreamEndWatch {
  ended: Promise<StreamEnd>;
  stop(): void;
}

/**
 * Watches a response stream until it finishes ('finish'), fails ('error') or closes without finishing ('close').
 * The watch only listens: an error nobody else listens for is thrown on, as it would have been without it (the
 * runtime's stream has a listener of its own, so there it is never thrown).
 */
export function watchStreamEnd(stream: ResponseStream): StreamEndWatch {
  let settle!: (end: StreamEnd) => void;
  const ended = new Promise<StreamEnd>((resolve) => (settle = resolve));
  const onFinish = () => done({ finished: true });
  const onClose = () => done(stream.writableFinished ? { finished: true } : { finished: false, error: new ResponseStreamClosedError() });
  const onError = (error: unknown) => {
    done({ finished: false, error });
    if (stream.listenerCount('error') === 0) throw error;
  };
  const stop = () => {
    stream.off('finish', onFinish);
    stream.off('close', onClose);
    stream.off('error', onError);
  };
  const done = (end: StreamEnd) => {
    stop();
    settle(end);
  };
  if (stream.writableFinished) done({ finished: true });
  else if (stream.destroyed) done({ finished: false, error: new ResponseStreamClosedError() });
  else {
    stream.on('finish', onFinish);
    stream.on('close', onClose);
    stream.on('error', onError);
  }
  return { ended, stop };
}
