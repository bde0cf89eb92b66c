/**
 * `npm start`: the whole pipeline offline in one command. Starts the SQS emulator, serverless offline and a
 * local OTLP receiver, sends one order through POST /orders, waits for its trace to cross the three
 * functions, prints it as a tree, stops everything and exits 0 (1 if the trace did not come together).
 */
import { FUNCTIONS, functionName, startOfflineStack, type OfflineStack } from './offline/stack';
import { isConnectedTrace, renderTraceTree, spansOfTrace } from './offline/trace-tree';

const TRACE_TIMEOUT_MS = 30_000;
const order = { customerEmail: 'ada@example.com', items: [{ sku: 'BOOK-42', quantity: 2 }, { sku: 'PEN-7', quantity: 1 }] };

async function main(): Promise<number> {
  const externalBackend = process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  console.log('Starting the SQS emulator, serverless offline and the local OTLP receiver…');
  const stack = await startOfflineStack({ ports: externalBackend ? { otlp: 0 } : {} });
  const stopOnSignal = () => void stack.stop().finally(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    return await sendOrderAndPrintTrace(stack, externalBackend);
  } finally {
    await stack.stop();
  }
}

async function sendOrderAndPrintTrace(stack: OfflineStack, externalBackend: string | undefined): Promise<number> {
  console.log(`POST ${stack.httpApiUrl} ${JSON.stringify(order)}`);
  const response = await fetch(stack.httpApiUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(order),
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await response.json()) as { orderId?: string; traceId?: string };
  console.log(`→ ${response.status} ${JSON.stringify(body)}\n`);
  if (response.status !== 202 || !body.traceId) {
    console.error('create-order did not accept the order; serverless offline said:\n' + stack.output());
    return 1;
  }
  if (!stack.receiver) {
    console.log(`Spans were sent to ${externalBackend}: look up trace ${body.traceId} there.`);
    return 0;
  }

  const traceId = body.traceId;
  const functions = FUNCTIONS.map(functionName);
  try {
    const spans = await stack.receiver.waitFor(
      (received) => isConnectedTrace(spansOfTrace(received, traceId), functions) && hasConfirmation(spansOfTrace(received, traceId)),
      TRACE_TIMEOUT_MS,
    );
    console.log(renderTraceTree(spansOfTrace(spans, traceId), { color: process.stdout.isTTY }));
    console.log(`\nOne trace across ${functions.length} functions. Run \`npm run offline\` to keep the stack up and send your own requests.`);
    return 0;
  } catch (error) {
    console.error(`${(error as Error).message}\nSpans of trace ${traceId} so far:`);
    console.error(renderTraceTree(spansOfTrace(stack.receiver.spans(), traceId)));
    console.error('\nserverless offline said:\n' + stack.output());
    return 1;
  }
}

/** notify-customer's own child span ends last: once it is in, the whole trace is. */
function hasConfirmation(spans: { name: string }[]): boolean {
  return spans.some((span) => span.name === 'send order confirmation');
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
