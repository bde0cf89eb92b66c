import { BroadcastChannel } from 'node:worker_threads';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as kit from '../../lib';
import { SHUTDOWN_CHANNEL, type ShutdownMessage } from '../../lib/export/shutdown-channel';
import { lambdaContext, sqsEvent, sqsRecord } from '../../lib/testing';

// Lambda Managed Instances: never frozen, so a worker's spans are exported in the background, by time and by size,
// and never inside an invocation; at shutdown the main thread asks each worker over a channel to export what it holds.

const exports: ReadableSpan[][] = [];
const exporter: SpanExporter = {
  export: (spans, done) => {
    exports.push(spans);
    done({ code: ExportResultCode.SUCCESS });
  },
  shutdown: async () => undefined,
};
const managedInstances = (env: Record<string, string> = {}) =>
  kit.startTelemetry(kit.readTelemetryConfig({ AWS_LAMBDA_INITIALIZATION_TYPE: 'lambda-managed-instances', AWS_LAMBDA_MAX_CONCURRENCY: '8', ...env }), {
    exporter,
  });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ids = (spans: ReadableSpan[]) => spans.map((span) => span.attributes['faas.invocation_id']).sort();

afterEach(() => {
  exports.length = 0;
});

describe('background export (Lambda Managed Instances)', () => {
  it('answers every invocation without exporting, then sends the spans of many invocations in one export after the delay', async () => {
    managedInstances({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '80' });
    expect(kit.getTelemetry().exportMode()).toBe('background');
    const contexts = [lambdaContext(), lambdaContext(), lambdaContext()];
    const handler = kit.traceInvokeHandler(async (event: { wait: number }) => {
      await sleep(event.wait);
      return 'done';
    });
    // Three at once, ending in another order than they began.
    await expect(Promise.all(contexts.map((context, index) => handler({ wait: 30 - index * 10 }, context)))).resolves.toEqual(['done', 'done', 'done']);
    expect(exports).toHaveLength(0);
    await sleep(100);
    expect(exports).toHaveLength(1);
    expect(ids(exports[0])).toEqual(contexts.map((context) => context.awsRequestId).sort());
  });

  it('exports at once, still in the background, when the held spans reach the batch size', async () => {
    managedInstances({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60000' });
    const { maxBatchSpans } = kit.getTelemetry().config.exportPolicy;
    const handler = kit.traceSqsRecords(async () => undefined);
    const records = Array.from({ length: 512 }, (_, index) => sqsRecord({ messageId: `m${index}` }));
    for (let batch = 0; batch < maxBatchSpans / 512; batch++) await handler(sqsEvent(records), lambdaContext());
    await sleep(5);
    expect(exports.map((spans) => spans.length)).toEqual([maxBatchSpans]);
  });

  it('exports what it holds when the main thread asks at shutdown, and says so on the channel', async () => {
    const main = new BroadcastChannel(SHUTDOWN_CHANNEL);
    const heard: ShutdownMessage[] = [];
    main.onmessage = (event) => void heard.push((event as { data: ShutdownMessage }).data);
    try {
      managedInstances({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60000' });
      await kit.traceInvokeHandler(async () => 'held')({}, lambdaContext());
      await sleep(20);
      expect(heard).toEqual([{ type: 'ready' }]);
      expect(exports).toHaveLength(0);
      main.postMessage({ type: 'drain', budgetMs: 300 } satisfies ShutdownMessage);
      for (let wait = 0; wait < 50 && heard.length < 2; wait++) await sleep(10);
      expect(heard).toEqual([{ type: 'ready' }, { type: 'drained' }]);
      expect(exports.map((spans) => spans.length)).toEqual([1]);
    } finally {
      main.close();
    }
  });

  it('says in the log that it exports in the background', async () => {
    const lines: string[] = [];
    const record = (message: string) => void lines.push(message);
    const logger = { error: record, warn: record, info: record, debug: record, verbose: record };
    const config = kit.readTelemetryConfig({ AWS_LAMBDA_INITIALIZATION_TYPE: 'lambda-managed-instances', OTEL_LOG_LEVEL: 'info' });
    // Said once per process, when the first set-up binds: a fresh module graph, as in a worker thread.
    vi.resetModules();
    const fresh = await import('../../lib');
    fresh.startTelemetry(config, { exporter, logger });
    expect(lines).toContain('traced-lambda: spans are exported in the background, never inside an invocation (Lambda Managed Instances).');
    expect(lines.filter((line) => line.includes('before each response'))).toEqual([]);
  });

  it('exports in the invocation as before with TRACED_LAMBDA_EXPORT_STRATEGY=invocation', async () => {
    managedInstances({ TRACED_LAMBDA_EXPORT_STRATEGY: 'invocation' });
    expect(kit.getTelemetry().exportMode()).toBe('in-invocation');
    await kit.traceInvokeHandler(async () => 'each')({}, lambdaContext());
    expect(exports).toHaveLength(1);
  });
});
