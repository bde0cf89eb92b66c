import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as the local receiver keeps it, decoded from OTLP/JSON. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: SpanKindName;
  startNs: bigint;
  endNs: bigint;
  status: 'UNSET' | 'OK' | 'ERROR';
  /** The status description, set with ERROR (the error's message). */
  statusMessage?: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  /** The spans this one is linked to (SQS `links`/`both` strategies, the `link` inbound policy); none when absent. */
  links?: ReceivedLink[];
  /** Its events, in order: an `exception` event holds a failure's type, message and stack. */
  events?: ReceivedEvent[];
}

/** A span event as OTLP/JSON carries it. */
export interface ReceivedEvent {
  name: string;
  timeNs: bigint;
  attributes: Record<string, unknown>;
}

/** A span link as OTLP/JSON carries it. */
export interface ReceivedLink {
  traceId: string;
  spanId: string;
  traceState?: string;
  attributes: Record<string, unknown>;
}

export type SpanKindName = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
const KINDS: SpanKindName[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUSES = ['UNSET', 'OK', 'ERROR'] as const;
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface OtlpReceiver {
  /** Base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint: string;
  port: number;
  spans(): ReceivedSpan[];
  /** Resolves with the spans once `done(spans)` holds, or rejects after `timeoutMs`. */
  waitFor(done: (spans: ReceivedSpan[]) => boolean, timeoutMs: number): Promise<ReceivedSpan[]>;
  /** Called with each batch as it arrives. */
  onSpans(listener: (batch: ReceivedSpan[]) => void): void;
  close(): Promise<void>;
}

/**
 * A small OTLP/HTTP receiver for `/v1/traces` (JSON encoding, what the functions send), bound to loopback.
 * It is what `npm start` prints the trace from when no other OTLP endpoint is configured.
 */
export async function startOtlpReceiver(port = 0, host = '127.0.0.1'): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  const listeners = new Set<(batch: ReceivedSpan[]) => void>();
  const server = createServer((request, response) => {
    handle(request, response, (batch) => {
      received.push(...batch);
      for (const listener of listeners) listener(batch);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://${host}:${actualPort}`,
    port: actualPort,
    spans: () => [...received],
    onSpans: (listener) => void listeners.add(listener),
    waitFor(done, timeoutMs) {
      if (done(received)) return Promise.resolve([...received]);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!done(received)) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve([...received]);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`the expected spans did not arrive within ${timeoutMs} ms (received ${received.length})`));
        }, timeoutMs);
        listeners.add(check);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        listeners.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function handle(request: IncomingMessage, response: ServerResponse, accept: (batch: ReceivedSpan[]) => void): void {
  const answer = (status: number, body: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  if (request.method !== 'POST' || request.url?.split('?')[0] !== '/v1/traces') {
    answer(404, { message: 'this receiver accepts POST /v1/traces only' });
    return;
  }
  if (!request.headers['content-type']?.includes('application/json')) {
    answer(415, { message: 'this receiver accepts the OTLP JSON encoding only (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)' });
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  request.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  request.on('end', () => {
    if (size > MAX_BODY_BYTES) {
      answer(413, { message: 'request too large' });
      return;
    }
    try {
      accept(decodeTracesRequest(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      answer(200, {});
    } catch (error) {
      answer(400, { message: `not an OTLP traces request: ${(error as Error).message}` });
    }
  });
}

interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}
interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
}

/** A span as OTLP/JSON writes it (every field may be missing or of another type in a request from elsewhere). */
interface OtlpSpan {
  traceId?: unknown;
  spanId?: unknown;
  parentSpanId?: unknown;
  name?: unknown;
  kind?: unknown;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  status?: { code?: unknown; message?: unknown };
  attributes?: OtlpKeyValue[];
  links?: unknown;
  events?: unknown;
}

/** OTLP/JSON `ExportTraceServiceRequest` → received spans. */
export function decodeTracesRequest(body: unknown): ReceivedSpan[] {
  const resourceSpans = (body as { resourceSpans?: unknown[] })?.resourceSpans;
  if (!Array.isArray(resourceSpans)) throw new Error('resourceSpans is missing');
  const spans: ReceivedSpan[] = [];
  for (const group of resourceSpans as { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[]) {
    const resource = toRecord(group.resource?.attributes);
    for (const scope of group.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        spans.push({
          traceId: String(span.traceId),
          spanId: String(span.spanId),
          parentSpanId: span.parentSpanId ? String(span.parentSpanId) : undefined,
          name: String(span.name),
          kind: KINDS[Number(span.kind) || 0] ?? 'UNSPECIFIED',
          startNs: BigInt(span.startTimeUnixNano ?? 0),
          endNs: BigInt(span.endTimeUnixNano ?? 0),
          status: STATUSES[Number(span.status?.code) || 0] ?? 'UNSET',
          statusMessage: span.status?.message ? String(span.status.message) : undefined,
          attributes: toRecord(span.attributes),
          resource,
          links: (Array.isArray(span.links) ? (span.links as Parameters<typeof toLink>[0][]) : []).map(toLink),
          events: (Array.isArray(span.events) ? (span.events as Parameters<typeof toEvent>[0][]) : []).map(toEvent),
        });
      }
    }
  }
  return spans;
}

function toLink(link: { traceId?: unknown; spanId?: unknown; traceState?: unknown; attributes?: OtlpKeyValue[] }): ReceivedLink {
  return {
    traceId: String(link.traceId),
    spanId: String(link.spanId),
    ...(link.traceState ? { traceState: String(link.traceState) } : {}),
    attributes: toRecord(link.attributes),
  };
}

function toEvent(event: { name?: unknown; timeUnixNano?: string | number; attributes?: OtlpKeyValue[] }): ReceivedEvent {
  return { name: String(event.name ?? ''), timeNs: BigInt(event.timeUnixNano ?? 0), attributes: toRecord(event.attributes) };
}

function toRecord(attributes: OtlpKeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((attributes ?? []).map(({ key, value }) => [key, toValue(value)]));
}

function toValue(value: OtlpAnyValue | undefined): unknown {
  if (!value) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(toValue);
  return undefined;
}
