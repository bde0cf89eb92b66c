import type { ClientRequest, Agent as HttpAgent, IncomingMessage, request as httpRequest } from 'node:http';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { BoundedSpanExporter } from './invocation-span-processor';

export interface OtlpExporterOptions {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

/**
 * OTLP/HTTP span export shaped for Lambda: the official serializer encodes the request (OTLP JSON);
 * the transport sends it in one attempt on a keep-alive connection, with no retry timers left behind for a
 * frozen sandbox to owe, and settles within `timeoutMs` whatever the backend does.
 */
export class OtlpHttpSpanExporter implements BoundedSpanExporter {
  /** Every export settles (answered, failed or abandoned) within this many milliseconds. */
  readonly settlesWithinMs: number;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  /** Request options resolved once: the URL is not parsed again for every invocation. */
  private readonly target: { protocol: string; hostname: string; port: string; path: string };
  private readonly headers: Record<string, string>;

  constructor(options: OtlpExporterOptions) {
    const url = new URL(options.url);
    this.settlesWithinMs = options.timeoutMs;
    // Loaded here, at the first flush, not when the function starts (the exporter is created on first use).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const transport = (url.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:http');
    this.agent = new transport.Agent({ keepAlive: true, maxSockets: 4 });
    this.send = transport.request;
    this.target = {
      protocol: url.protocol,
      // A bracketed IPv6 literal is a URL's form; the socket wants the bare address.
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port,
      path: `${url.pathname}${url.search}`,
    };
    this.headers = { ...options.headers, 'content-type': 'application/json' };
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    let body: Uint8Array | undefined;
    try {
      body = JsonTraceSerializer.serializeRequest(spans);
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error as Error });
      return;
    }
    if (!body) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('the spans could not be serialized') });
      return;
    }
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const settle = (result: ExportResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resultCallback(result);
    };
    let request: ClientRequest;
    try {
      request = this.send(
        {
          ...this.target,
          method: 'POST',
          agent: this.agent,
          headers: { ...this.headers, 'content-length': String(body.byteLength) },
        },
        (response: IncomingMessage) => {
          response.on('error', (error) => settle({ code: ExportResultCode.FAILED, error }));
          // Drain the body so that the connection goes back to the pool for the next invocation.
          response.on('data', () => undefined);
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            if (status >= 200 && status < 300) settle({ code: ExportResultCode.SUCCESS });
            else settle({ code: ExportResultCode.FAILED, error: new Error(`the OTLP endpoint answered ${status}`) });
          });
        },
      );
    } catch (error) {
      // Refused before anything is sent, e.g. a header from OTEL_EXPORTER_OTLP_HEADERS that HTTP cannot carry.
      settle({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
      return;
    }
    // One deadline for the whole exchange (a backend that answers byte by byte is bounded too), unref'd so that
    // a script's process can exit while an abandoned export is still open.
    deadline = setTimeout(() => {
      const error = new Error(`no answer from the OTLP endpoint within ${this.settlesWithinMs} ms`);
      settle({ code: ExportResultCode.FAILED, error });
      request.destroy(error);
    }, this.settlesWithinMs).unref();
    request.on('error', (error) => settle({ code: ExportResultCode.FAILED, error }));
    request.end(body);
  }

  async shutdown(): Promise<void> {
    this.agent.destroy();
  }
}
