/** An OTLP/HTTP collector for the runtime tests and the bench that answers late, as a distant backend does. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeTracesRequest, type ReceivedSpan } from '../../scripts/offline/otlp-receiver';

export interface SlowCollector {
  endpoint: string;
  /** The spans of the exports answered so far. */
  spans(): ReceivedSpan[];
  close(): Promise<void>;
}

/** An OTLP/HTTP collector that answers each export `delayMs` after it arrives; a span counts once answered. */
export async function startSlowCollector(delayMs: number): Promise<SlowCollector> {
  const answered: ReceivedSpan[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const timer = setTimeout(() => {
        answered.push(...decodeTracesRequest(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }, delayMs);
      response.on('close', () => clearTimeout(timer));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => [...answered],
    close: () => closeServer(server),
  };
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((done) => server.close(() => done()));
}
