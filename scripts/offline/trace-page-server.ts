import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReceivedSpan } from './otlp-receiver';
import { LIVE_PATHS, renderTracePage, spansToJson } from './trace-page';

export interface TracePageServer {
  /** The page's address, to print. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The port `npm run offline` serves its trace page on: TRACE_PAGE_PORT, or 0 for one the system picks. */
export function tracePagePortFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const parsed = Number(env.TRACE_PAGE_PORT);
  return Number.isInteger(parsed) && parsed > 0 && parsed < 65536 ? parsed : 0;
}

/**
 * Serves the trace page live on loopback, rendered from `spans()` at each request: the page itself, the spans
 * as JSON and their count (what the page polls).
 */
export async function startTracePageServer(
  spans: () => readonly ReceivedSpan[],
  options: { port?: number; host?: string; title?: string } = {},
): Promise<TracePageServer> {
  const host = options.host ?? '127.0.0.1';
  let allowedHosts = new Set<string>();
  const server = createServer((request, response) => handle(request, response, spans, allowedHosts, options.title));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // Only requests addressed to this server by name: a web page that rebinds its own host name to 127.0.0.1
  // cannot read the traces.
  allowedHosts = new Set([`${host}:${port}`, `localhost:${port}`]);
  return {
    url: `http://${host}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function handle(
  request: IncomingMessage,
  response: ServerResponse,
  spans: () => readonly ReceivedSpan[],
  allowedHosts: Set<string>,
  title: string | undefined,
): void {
  const send = (status: number, type: string, body: string) =>
    response
      .writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
      .end(request.method === 'HEAD' ? undefined : body);
  if (!allowedHosts.has(request.headers.host ?? '')) return void send(421, 'text/plain; charset=utf-8', 'unknown host\n');
  if (request.method !== 'GET' && request.method !== 'HEAD') return void send(405, 'text/plain; charset=utf-8', 'GET only\n');
  const received = spans();
  switch (request.url?.split('?')[0]) {
    case LIVE_PATHS.page:
      return void send(200, 'text/html; charset=utf-8', renderTracePage(received, { title, live: true }));
    case LIVE_PATHS.traces:
      return void send(200, 'application/json', JSON.stringify({ spanCount: received.length, spans: spansToJson(received) }));
    case LIVE_PATHS.spanCount:
      return void send(200, 'application/json', JSON.stringify({ spanCount: received.length }));
    default:
      return void send(404, 'text/plain; charset=utf-8', 'not found\n');
  }
}
