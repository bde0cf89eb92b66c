import { Writable } from 'node:stream';
import type { HttpResponseMetadata, ResponseStream } from '../response-stream';

/**
 * A response stream for tests, standing in for the one Lambda's runtime gives a streaming handler: it keeps what
 * is written, accepts a content type until the first write, runs the prelude hook `httpResponseStream` sets
 * before the first `write()` (as the runtime does: not before a chunk given to `end()` alone), and has an
 * 'error' listener of its own, as the runtime's has, so that a failed stream is recorded instead of thrown.
 */
export class TestResponseStream extends Writable {
  /** The content type set with `setContentType` (the runtime's default when none was). */
  contentType = 'application/octet-stream';
  _onBeforeFirstWrite?: (write: (chunk: string | Uint8Array) => void) => void;
  /** The error the stream failed with, if it did. */
  failure: unknown;
  private readonly bodyChunks: Buffer[] = [];
  private readonly preludeChunks: Buffer[] = [];
  private written = false;

  constructor() {
    super({ decodeStrings: true });
    this.on('error', (error) => (this.failure = error));
  }

  setContentType(contentType: string): void {
    if (this.written) throw new Error('the content type of a response stream is set before its first write');
    this.contentType = contentType;
  }

  override write(chunk: unknown, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void): boolean {
    if (!this.written && typeof this._onBeforeFirstWrite === 'function') {
      // Kept apart from the body: the runtime sends the prelude ahead of it, on the same stream.
      this._onBeforeFirstWrite((prelude) => this.preludeChunks.push(Buffer.from(prelude)));
    }
    this.written = true;
    return super.write(chunk, encoding as BufferEncoding, callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bodyChunks.push(chunk);
    callback();
  }

  /** The response's body: every byte written after the metadata prelude. */
  body(): Buffer {
    return Buffer.concat(this.bodyChunks);
  }

  /** The body as UTF-8 text. */
  text(): string {
    return this.body().toString('utf8');
  }

  /** The HTTP metadata the prelude carried (status code, headers, cookies), undefined without one. */
  metadata(): HttpResponseMetadata | undefined {
    const prelude = Buffer.concat(this.preludeChunks);
    const json = prelude.subarray(0, prelude.indexOf(0) === -1 ? prelude.length : prelude.indexOf(0));
    return json.length > 0 ? (JSON.parse(json.toString('utf8')) as HttpResponseMetadata) : undefined;
  }
}

/** A response stream for calling a streaming handler in a test: `await handler(event, responseStream(), context)`. */
export function responseStream(): TestResponseStream & ResponseStream {
  return new TestResponseStream();
}
