import type { ClientRequest, Agent as HttpAgent, IncomingMessage, request as httpRequest } from 'node:http';
import { diag } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { OTLP_EXPORT_LIMITS, serializeWithinLimits, type ExportRequest } from './export-limits';
import { sendBeforeExit, type PreparedRequest } from './exit-export';
import type { BoundedSpanExporter } from './invocation-span-processor';
import { describeOversizeSpans } from './oversize-span';
import { createRequestSigner, type RequestSigner, type SigningConfig } from './sigv4';

/**
 * Sockets of the keep-alive agent, and requests of a split export in flight at once: against a backend that takes
 * 20 ms to answer, 12,000 spans settle in about 60 ms four at a time and 95 ms one after the other.
 */
const PARALLEL_REQUESTS = 4;

/** A split export some of whose requests failed: `notExported` of its spans are lost, not all of them. */
export class PartlyExportedError extends Error {
  override readonly name = 'PartlyExportedError';
  constructor(
    message: string,
    readonly notExported: number,
    cause: Error,
  ) {
    super(message, { cause });
  }
}

/** One export's requests: whether it has settled, and the requests still open, to end at its deadline. */
interface Exchange {
  settled: boolean;
  inFlight: Set<ClientRequest>;
}

export interface OtlpExporterOptions {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** `gzip` compresses each request body (OTEL_EXPORTER_OTLP_COMPRESSION). */
  compression?: 'gzip' | 'none';
  /** Signs each request with SigV4 (an AWS endpoint, such as CloudWatch's OTLP traces endpoint). */
  signing?: SigningConfig;
  /** Headers read when the first request is sent (a secret from SSM or Secrets Manager), added to every request. */
  secretHeaders?: () => Promise<Record<string, string>>;
  /** Invocations that may export at once (Managed Instances): the keep-alive sockets, never fewer than a split export's. */
  concurrency?: number;
}

/**
 * OTLP/HTTP span export shaped for Lambda: the official serializer encodes the request (OTLP JSON), split into
 * several when the spans are more than one request to CloudWatch's endpoint may carry (`export-limits.ts`);
 * the transport sends each in one attempt on a keep-alive connection, with no retry timers left behind for a
 * frozen sandbox to owe, and the export settles within `timeoutMs` whatever the backend does.
 */
export class OtlpHttpSpanExporter implements BoundedSpanExporter {
  /** Every export settles (answered, failed or abandoned) within this many milliseconds. */
  readonly settlesWithinMs: number;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  /** Request options resolved once: the URL is not parsed again for every invocation. */
  private readonly target: { protocol: string; hostname: string; port: string; path: string };
  private readonly headers: Record<string, string>;
  private readonly gzip: ((body: Uint8Array) => Uint8Array) | undefined;
  private readonly sign: RequestSigner | undefined;
  private readonly secretHeaders: (() => Promise<Record<string, string>>) | undefined;
  /** The secret headers once read, for the last export at the process's exit (nothing can be read then). */
  private secretHeadersRead: Record<string, string> | undefined;
  private readonly url: string;
  /** Each request posted and not answered yet, as sent: what a crash sends again when it never left (`takeUnsent`). */
  private readonly unanswered = new Map<ClientRequest, PreparedRequest>();

  constructor(options: OtlpExporterOptions) {
    const url = new URL(options.url);
    this.url = url.href;
    this.settlesWithinMs = options.timeoutMs;
    // Loaded here, at the first flush, not when the function starts (the exporter is created on first use).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const transport = (url.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:http');
    // One socket per invocation that may export at once: exports of concurrent invocations do not queue behind each other.
    this.agent = new transport.Agent({ keepAlive: true, maxSockets: Math.max(PARALLEL_REQUESTS, options.concurrency ?? 1) });
    this.send = transport.request;
    this.target = {
      protocol: url.protocol,
      // A bracketed IPv6 literal is a URL's form; the socket wants the bare address.
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port,
      path: `${url.pathname}${url.search}`,
    };
    this.headers = { ...options.headers, 'content-type': 'application/json' };
    if (options.compression === 'gzip') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { gzipSync } = require('node:zlib') as typeof import('node:zlib');
      this.gzip = (body) => gzipSync(body);
      this.headers['content-encoding'] = 'gzip';
    }
    this.sign = options.signing ? createRequestSigner(options.signing) : undefined;
    this.secretHeaders = options.secretHeaders;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    let requests: ExportRequest[];
    try {
      const within = serializeWithinLimits(spans);
      if (within.oversize.length > 0) diag.warn(describeOversizeSpans(within.oversize, OTLP_EXPORT_LIMITS.maxSpanBytes));
      requests = within.requests;
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error as Error });
      return;
    }
    if (requests.length === 0) {
      resultCallback({ code: ExportResultCode.SUCCESS });
      return;
    }
    const exchange: Exchange = { settled: false, inFlight: new Set() };
    let started = 0;
    let answered = 0;
    let acceptedSpans = 0;
    let failedRequests = 0;
    let firstError: Error | undefined;
    // One deadline for the whole export, every request and its signing included (a backend that answers byte by
    // byte is bounded too), unref'd so that a script's process can exit while an abandoned export is still open.
    const deadline = setTimeout(() => {
      const error = new Error(`no answer from the OTLP endpoint within ${this.settlesWithinMs} ms`);
      failedRequests += requests.length - answered;
      finish(error);
      for (const request of exchange.inFlight) request.destroy(error);
    }, this.settlesWithinMs).unref();
    const finish = (error: Error | undefined) => {
      exchange.settled = true;
      clearTimeout(deadline);
      if (failedRequests === 0) {
        resultCallback({ code: ExportResultCode.SUCCESS });
        return;
      }
      const reason = error ?? new Error('unknown error');
      if (requests.length === 1) {
        resultCallback({ code: ExportResultCode.FAILED, error: reason });
        return;
      }
      const message = `${spans.length - acceptedSpans} of ${spans.length} spans were not accepted (${failedRequests} of ${requests.length} requests failed): ${reason.message}`;
      resultCallback({ code: ExportResultCode.FAILED, error: new PartlyExportedError(message, spans.length - acceptedSpans, reason) });
    };
    const answer = (request: ExportRequest, result: ExportResult) => {
      if (exchange.settled) return;
      answered++;
      if (result.code === ExportResultCode.SUCCESS) acceptedSpans += request.spanCount;
      else {
        failedRequests++;
        firstError ??= result.error;
      }
      if (answered === requests.length) finish(firstError);
      else sendMore();
    };
    const sendMore = () => {
      while (!exchange.settled && started < requests.length && started - answered < PARALLEL_REQUESTS) {
        const request = requests[started++];
        let answeredOnce = false;
        this.start(request, exchange, (result) => {
          if (answeredOnce) return;
          answeredOnce = true;
          answer(request, result);
        });
      }
    };
    sendMore();
  }

  /** Compresses, signs and posts one request; `answer` may be called more than once (the caller keeps the first). */
  private start({ body: uncompressed, spanCount }: ExportRequest, exchange: Exchange, answer: (result: ExportResult) => void): void {
    const fail = (error: unknown) => answer({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    let body: Uint8Array;
    try {
      body = this.gzip ? this.gzip(uncompressed) : uncompressed;
    } catch (error) {
      fail(error);
      return;
    }
    const headers = { ...this.headers, 'content-length': String(body.byteLength) };
    const post = (sendHeaders: Record<string, string>) => {
      // Signed after the export gave up: nothing is sent.
      if (exchange.settled) return;
      let request: ClientRequest | undefined = undefined;
      try {
        request = this.post(body, sendHeaders, (result) => {
          if (request) {
            exchange.inFlight.delete(request);
            this.unanswered.delete(request);
          }
          answer(result);
        });
        exchange.inFlight.add(request);
        this.unanswered.set(request, { url: this.url, headers: sendHeaders, body, spanCount });
      } catch (error) {
        // Refused before anything is sent, e.g. a header from OTEL_EXPORTER_OTLP_HEADERS that HTTP cannot carry.
        fail(error);
      }
    };
    if (!this.sign && !this.secretHeaders) {
      post(headers);
      return;
    }
    this.prepare(headers, body).then(post, fail);
  }

  /** Adds the secret headers, then signs (the signature covers them). */
  private async prepare(headers: Record<string, string>, body: Uint8Array): Promise<Record<string, string>> {
    if (this.secretHeaders) this.secretHeadersRead = await this.secretHeaders();
    const withSecrets = this.secretHeadersRead ? { ...headers, ...this.secretHeadersRead } : headers;
    return this.signed(withSecrets, body);
  }

  private async signed(headers: Record<string, string>, body: Uint8Array): Promise<Record<string, string>> {
    if (!this.sign) return headers;
    const { protocol, hostname, port, path } = this.target;
    return this.sign({ method: 'POST', protocol, hostname, port: port ? Number(port) : undefined, path, headers, body });
  }

  /**
   * Sends `spans` with nothing asynchronous left (the process is exiting: exit-export.ts), blocking at most
   * `maxWaitMs`: how many were accepted, or why none can be sent: SigV4 signing is asynchronous, and a secret header
   * must have been read already.
   */
  exportBeforeExit(spans: ReadableSpan[], maxWaitMs: number): number | string {
    if (this.sign) return 'requests to this endpoint are SigV4-signed, which cannot be done once the process is exiting';
    const requests = this.prepareBeforeExit(spans);
    return typeof requests === 'string' ? requests : sendBeforeExit(requests, maxWaitMs);
  }

  /**
   * The requests that would send `spans`, signed: ready for `sendBeforeExit`, or why they cannot be (a secret header
   * not read yet). Nothing but promise callbacks runs before it settles (no timer, no I/O): a crashing process
   * gets them without handing the event loop a turn (crash-export.ts).
   */
  async prepareBeforeCrash(spans: ReadableSpan[]): Promise<PreparedRequest[] | string> {
    const unsigned = this.prepareBeforeExit(spans);
    if (typeof unsigned === 'string') return unsigned;
    return Promise.all(unsigned.map(async (request) => ({ ...request, headers: await this.signed(request.headers, request.body) })));
  }

  /**
   * Sends `requests` from a worker thread while this one waits, at most `maxWaitMs` (exit-export.ts), with every request
   * posted earlier that is not on its way yet (no socket yet, or one still connecting): the process will hand the
   * event loop no further turn, so each of those is abandoned and sent again as it was signed. Requests already
   * written are left alone, so that the backend never receives the same spans twice.
   */
  sendBeforeCrash(requests: PreparedRequest[], maxWaitMs: number): { sent: number; of: number } {
    const all = [...requests];
    for (const [request, prepared] of this.unanswered) {
      if (request.socket && !request.socket.connecting) continue;
      this.unanswered.delete(request);
      request.destroy();
      all.push(prepared);
    }
    return { sent: sendBeforeExit(all, maxWaitMs), of: all.reduce((count, request) => count + request.spanCount, 0) };
  }

  private prepareBeforeExit(spans: ReadableSpan[]): PreparedRequest[] | string {
    if (this.secretHeaders && !this.secretHeadersRead) return 'the secret header has not been read yet';
    const { requests } = serializeWithinLimits(spans);
    return requests.map((request) => {
      const body = this.gzip ? this.gzip(request.body) : request.body;
      const headers = { ...this.headers, ...this.secretHeadersRead, 'content-length': String(body.byteLength) };
      return { url: this.url, headers, body, spanCount: request.spanCount };
    });
  }

  private post(body: Uint8Array, headers: Record<string, string>, settle: (result: ExportResult) => void): ClientRequest {
    const request = this.send({ ...this.target, method: 'POST', agent: this.agent, headers }, (response: IncomingMessage) => {
      response.on('error', (error) => settle({ code: ExportResultCode.FAILED, error }));
      // Drain the body so that the connection goes back to the pool for the next invocation.
      response.on('data', () => undefined);
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) settle({ code: ExportResultCode.SUCCESS });
        else settle({ code: ExportResultCode.FAILED, error: new Error(`the OTLP endpoint answered ${status}`) });
      });
    });
    request.on('error', (error) => settle({ code: ExportResultCode.FAILED, error }));
    request.end(body);
    return request;
  }

  async shutdown(): Promise<void> {
    this.agent.destroy();
  }
}
