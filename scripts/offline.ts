/**
 * `npm run offline`: the same stack as `npm start`, kept in the foreground for manual use until Ctrl-C.
 * Every trace the local receiver gets is printed as a tree once it has been quiet for a moment, and shown as a
 * waterfall on a local page that updates as spans arrive.
 */
import type { ReceivedSpan } from './offline/otlp-receiver';
import { functionPrefix, functionName, portsFromEnv, startOfflineStack } from './offline/stack';
import { startTracePageServer, tracePagePortFromEnv } from './offline/trace-page-server';
import { renderTraceTree, spansOfTrace } from './offline/trace-tree';

const QUIET_MS = 1500;

async function main(): Promise<void> {
  const externalBackend = process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  // Started first, so that a taken TRACE_PAGE_PORT fails before the slow part; it reads the receiver once there is one.
  let receivedSpans = (): ReceivedSpan[] => [];
  const page = externalBackend
    ? undefined
    : await startTracePageServer(() => receivedSpans(), { port: tracePagePortFromEnv(), title: 'npm run offline · traces received' });
  const stack = await startOfflineStack({ ports: { ...portsFromEnv(), ...(externalBackend ? { otlp: 0 } : {}) }, echo: process.argv.includes('--verbose') });
  receivedSpans = () => stack.receiver?.spans() ?? [];
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    void Promise.all([stack.stop(), page?.close()]).finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  console.log(`
The order pipeline runs offline (Ctrl-C stops it):
  HTTP API      POST ${stack.httpApiUrl}
  REST API      POST ${stack.restApiUrl}
  Lambda invoke      ${stack.lambdaEndpoint}   (FunctionName ${functionName('notify-customer')}, …)
  SQS emulator       ${stack.sqsEndpoint}   (queue ${stack.queueUrl})${stack.kinesisEndpoint ? `\n  Kinesis emulator   ${stack.kinesisEndpoint}` : ''}
  Traces             ${stack.receiver ? `${stack.receiver.endpoint}/v1/traces, printed below` : `sent to ${externalBackend}`}${page ? `\n  Trace waterfall    ${page.url}   (every trace received, updated live)` : ''}

Try:
  curl -s -X POST ${stack.httpApiUrl} -H 'content-type: application/json' \\
    -H "traceparent: 00-$(openssl rand -hex 16)-$(openssl rand -hex 8)-01" \\
    -d '{"customerEmail":"ada@example.com","items":[{"sku":"BOOK-42","quantity":1}]}'
`);

  const receiver = stack.receiver;
  if (!receiver) return;
  // Print each trace once no new span of it has arrived for QUIET_MS; again, marked as such, when more arrive
  // (a message that fails comes back after its queue's visibility timeout, with new consumer spans).
  const timers = new Map<string, NodeJS.Timeout>();
  const printed = new Set<string>();
  receiver.onSpans((batch) => {
    for (const traceId of new Set(batch.map((span) => span.traceId))) {
      clearTimeout(timers.get(traceId));
      timers.set(
        traceId,
        setTimeout(() => {
          timers.delete(traceId);
          const tree = renderTraceTree(spansOfTrace(receiver.spans(), traceId), { color: process.stdout.isTTY, functionPrefix: functionPrefix() });
          console.log(`\n${printed.has(traceId) ? '(more spans arrived) ' : ''}${tree}`);
          printed.add(traceId);
        }, QUIET_MS),
      );
    }
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
