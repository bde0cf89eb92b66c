/**
 * `npm start`: the whole pipeline offline in one command. Starts the SQS emulator, serverless offline and a
 * local OTLP receiver, sends one order through POST /orders, waits for its trace to cross the three
 * functions, prints it as a tree, writes it as a waterfall page (.traces/latest.html), stops everything and
 * exits 0 (1 if the trace did not come together).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readTelemetryConfig, startRun, startTelemetry, tracedFetch, type Run } from '../lib';
import { functionPrefix, functionName, portsFromEnv, startOfflineStack, type OfflineStack } from './offline/stack';
import type { ReceivedSpan } from './offline/otlp-receiver';
import { writeTracePage } from './offline/trace-page';
import { functionOf, renderTraceTree, spansOfTrace, waitForConnectedTrace } from './offline/trace-tree';

const TRACE_TIMEOUT_MS = 30_000;
// Git-ignored; the page is rewritten by each run.
const TRACE_PAGE_FILE = resolve(__dirname, '..', '.traces', 'latest.html');
// At least: npm start, POST, POST /orders, send, process, invoke, notify-customer, send order confirmation.
const EXPECTED_SPANS = 8;
const order = {
  customerEmail: 'ada@example.com',
  items: [
    { sku: 'BOOK-42', quantity: 2 },
    { sku: 'PEN-7', quantity: 1 },
  ],
};

async function main(): Promise<number> {
  const externalBackend = process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  console.log('Starting the SQS emulator, serverless offline and the local OTLP receiver…');
  const stack = await startOfflineStack({ ports: { ...portsFromEnv(), ...(externalBackend ? { otlp: 0 } : {}) } });
  const stopOnSignal = () => void stack.stop().finally(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  // The driver traces itself too: the whole run is one trace, rooted in its own span (the seed's "one root
  // span for a long script"), exported to the same backend as the functions.
  startTelemetry(
    readTelemetryConfig({
      ...process.env,
      OTEL_SERVICE_NAME: 'npm-start',
      ...(stack.receiver ? { OTEL_EXPORTER_OTLP_ENDPOINT: stack.receiver.endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' } : {}),
    }),
  );
  const run = startRun('npm start', { attributes: { 'order.count': 1 } });
  try {
    return await sendOrderAndPrintTrace(stack, run, externalBackend);
  } finally {
    await stack.stop();
  }
}

async function sendOrderAndPrintTrace(stack: OfflineStack, run: Run, externalBackend: string | undefined): Promise<number> {
  console.log(`POST ${stack.httpApiUrl} ${JSON.stringify(order)}`);
  const response = await run.inside(() =>
    tracedFetch(stack.httpApiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(order),
      signal: AbortSignal.timeout(15_000),
    }),
  );
  const body = (await response.json()) as { orderId?: string; traceId?: string };
  await run.end(response.status === 202 ? undefined : new Error(`create-order answered ${response.status}`));
  console.log(`→ ${response.status} ${JSON.stringify(body)}\n`);
  if (response.status !== 202 || !body.traceId) {
    console.error('create-order did not accept the order; serverless offline said:\n' + stack.output());
    return 1;
  }
  if (!stack.receiver) {
    // The backend cannot be asked which spans it has: wait until the message has been through process-order
    // (and so notify-customer), whose spans are exported before each returns, then stop the stack.
    try {
      await stack.waitForQueueDrained(TRACE_TIMEOUT_MS);
    } catch (error) {
      console.error(`${(error as Error).message}: the order did not go through.\nserverless offline said:\n${stack.output()}`);
      return 1;
    }
    console.log(`The order went through every queue and function; their spans were sent to ${externalBackend}: look up trace ${body.traceId} there.`);
    return 0;
  }

  const traceId = body.traceId;
  try {
    // Every queue drained: each consumer has returned, and offline each function exports before it returns, so
    // every span of the order is in, whichever functions it went through (serverless.yml may declare more).
    await stack.waitForQueueDrained(TRACE_TIMEOUT_MS);
    const spans = await waitForConnectedTrace(
      stack.receiver,
      traceId,
      { count: EXPECTED_SPANS, functions: ['npm-start', functionName('create-order')] },
      TRACE_TIMEOUT_MS,
    );
    const reached = new Set(spans.map(functionOf).filter((name) => name !== 'npm-start'));
    console.log(renderTraceTree(spans, { color: process.stdout.isTTY, functionPrefix: functionPrefix() }));
    for (const hop of queueHops(spans)) console.log(`\nQueue hop ${hop.name}: ${(hop.ms / 1000).toFixed(2)} s from send to process.`);
    console.log(`\nOne trace across ${reached.size} functions. Run \`npm run offline\` to keep the stack up and send your own requests.`);
    await printTracePage(stack.receiver.spans(), traceId, console.log);
    return 0;
  } catch (error) {
    console.error(`${(error as Error).message}\nSpans of trace ${traceId} so far:`);
    console.error(renderTraceTree(spansOfTrace(stack.receiver.spans(), traceId), { functionPrefix: functionPrefix() }));
    console.error('\nserverless offline said:\n' + stack.output());
    await printTracePage(stack.receiver.spans(), traceId, console.error);
    return 1;
  }
}

/**
 * The time each message spent between its send and its processing: from the end of a PRODUCER span to the start
 * of its CONSUMER child (the batching window, and the event source's polling, are in there).
 */
function queueHops(spans: ReceivedSpan[]): { name: string; ms: number }[] {
  return spans.flatMap((consumer) => {
    const producer = consumer.kind === 'CONSUMER' ? spans.find((span) => span.spanId === consumer.parentSpanId && span.kind === 'PRODUCER') : undefined;
    return producer ? [{ name: producer.name, ms: Number(consumer.startNs - producer.endNs) / 1e6 }] : [];
  });
}

/** Writes every span the receiver got as a waterfall page and prints its address; a failed write only warns. */
async function printTracePage(spans: ReceivedSpan[], traceId: string, print: (line: string) => void): Promise<void> {
  try {
    await writeTracePage(TRACE_PAGE_FILE, spans, { title: `npm start · trace ${traceId}`, madeAt: new Date() });
    print(`\nThe trace as a waterfall, to open in a browser:\n  ${pathToFileURL(TRACE_PAGE_FILE).href}`);
  } catch (error) {
    console.error(`\nThe trace page could not be written to ${TRACE_PAGE_FILE}: ${(error as Error).message}`);
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
