import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver } from '../../scripts/offline/otlp-receiver';
import { freePorts, startOfflineStack, type OfflineStack } from '../../scripts/offline/stack';
import { ORDER_FLOW } from './order-flow';
import { waitForConnectedTrace } from '../../scripts/offline/trace-tree';

// "Point it at your own backend": with OTEL_EXPORTER_OTLP_ENDPOINT set, the offline stack starts no receiver
// of its own and the functions export to that endpoint (here a second receiver standing in for a collector).
let backend: OtlpReceiver;
let stack: OfflineStack;

beforeAll(async () => {
  const [http, lambda, sqs, collector] = await freePorts(4);
  backend = await startOtlpReceiver(collector);
  stack = await startOfflineStack({
    ports: { http, lambda, sqs, otlp: 0 },
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: backend.endpoint },
    readyTimeoutMs: 90_000,
    buildFolder: `.esbuild-e2e-${http}`,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await backend?.close();
}, 30_000);

describe('an external OTLP backend', () => {
  it('receives the whole trace from the offline functions', { timeout: 90_000 }, async () => {
    expect(stack.receiver).toBeUndefined();

    const response = await fetch(stack.httpApiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 1 }] }),
      signal: AbortSignal.timeout(15_000),
    });
    const { traceId } = (await response.json()) as { traceId: string };

    expect(response.status).toBe(202);
    const spans = await waitForConnectedTrace(backend, traceId, { count: 6, functions: ORDER_FLOW }, 45_000);
    expect(spans.map((span) => span.name)).toContain('send order confirmation');
  });
});
