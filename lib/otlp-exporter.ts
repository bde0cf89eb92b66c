import type { Agent as HttpAgent, IncomingMessage, request as httpRequest } from 'node:http';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

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
export class OtlpHttpSpanExporter implements SpanExporter {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: OtlpExporterOptions) {
    this.url = new URL(options.url);
    // Loaded here, at the first flush, not when the function starts (the exporter is created on first use).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const transport = (this.url.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:http');
    this.agent = new transport.Agent({ keepAlive: true, maxSockets: 4 });
    this.send = transport.request;
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
    const settle = (result: ExportResult) => {
      if (settled) return;
      settled = true;
      resultCallback(result);
    };
    const request = this.send(
      this.url,
      {
        method: 'POST',
        agent: this.agent,
        headers: { ...this.headers, 'content-length': String(body.byteLength) },
        timeout: this.options.timeoutMs,
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
    request.on('timeout', () => request.destroy(new Error(`no answer from the OTLP endpoint within ${this.options.timeoutMs} ms`)));
    request.on('error', (error) => settle({ code: ExportResultCode.FAILED, error }));
    request.end(body);
  }

  async shutdown(): Promise<void> {
    this.agent.destroy();
  }
}
