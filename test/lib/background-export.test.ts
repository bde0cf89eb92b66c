import { BroadcastChannel } from 'node:worker_threads';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as kit from '../../lib';
import { DRAIN_STATE, SHUTDOWN_CHANNEL, type ShutdownReady } from '../../lib/export/shutdown-channel';
import { lambdaContext, sqsEvent, sqsRecord } from '../../lib/testing';

// Lambda Managed Instances: never frozen, so a worker's spans are exported in the background, by time and by size,
// and never inside an invocation; at shutdown the main thread asks each worker, in the request the worker announced on a
// channel, to export what it holds.

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

  it('exports what it holds when the main thread asks at shutdown, and answers in the request it announced', async () => {
    const main = new BroadcastChannel(SHUTDOWN_CHANNEL);
    const announced: ShutdownReady[] = [];
    main.onmessage = (event) => void announced.push((event as { data: ShutdownReady }).data);
    try {
      managedInstances({ TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60000' });
      await kit.traceInvokeHandler(async () => 'held')({}, lambdaContext());
      await sleep(20);
      expect(announced).toEqual([{ type: 'ready', request: expect.any(SharedArrayBuffer) }]);
      expect(exports).toHaveLength(0);
      // Arrange: what the main thread does at SIGTERM (extension/after-response.mjs).
      const state = new Int32Array(announced[0].request, 0, 1);
      new Float64Array(announced[0].request, 8, 1)[0] = Date.now() + 300;
      Atomics.store(state, 0, DRAIN_STATE.asked);
      Atomics.notify(state, 0);
      // Act: the main thread waits for the answer.
      const answer = await Atomics.waitAsync(state, 0, DRAIN_STATE.asked, 500).value;
      // Assert
      expect(answer).toBe('ok');
      expect(Atomics.load(state, 0)).toBe(DRAIN_STATE.answered);
      expect(exports.map((spans) => spans.length)).toEqual([1]);
    } finally {
      main.close();
    }
  });

  it("gives the export what is left until the main thread's deadline, and answers even when nothing is left", async () => {
    const main = new BroadcastChannel(SHUTDOWN_CHANNEL);
    const announced: ShutdownReady[] = [];
    main.onmessage = (event) => void announced.push((event as { data: ShutdownReady }).data);
    const never: SpanExporter = { export: () => undefined, shutdown: async () => undefined };
    try {
      kit.startTelemetry(kit.readTelemetryConfig({ AWS_LAMBDA_INITIALIZATION_TYPE: 'lambda-managed-instances', TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60000' }), {
        exporter: never,
      });
      await kit.traceInvokeHandler(async () => 'held')({}, lambdaContext());
      await sleep(20);
      const state = new Int32Array(announced[0].request, 0, 1);
      // A deadline already past (the request read late): the worker must not wait its own budget on a receiver that never answers.
      new Float64Array(announced[0].request, 8, 1)[0] = Date.now() - 1;
      const asked = performance.now();
      Atomics.store(state, 0, DRAIN_STATE.asked);
      Atomics.notify(state, 0);
      expect(await Atomics.waitAsync(state, 0, DRAIN_STATE.asked, 1_000).value).toBe('ok');
      expect(performance.now() - asked).toBeLessThan(100);
    } finally {
      main.close();
    }
  });

  it('closes its request when its set-up is replaced: the main thread then has nothing to ask it', async () => {
    const main = new BroadcastChannel(SHUTDOWN_CHANNEL);
    const announced: ShutdownReady[] = [];
    main.onmessage = (event) => void announced.push((event as { data: ShutdownReady }).data);
    try {
      managedInstances();
      managedInstances();
      await sleep(20);
      expect(announced).toHaveLength(2);
      expect(announced.map(({ request }) => Atomics.load(new Int32Array(request, 0, 1), 0))).toEqual([DRAIN_STATE.closed, DRAIN_STATE.waiting]);
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
