import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { invokeInterleaved, type SentInvocation } from './interleaved-invocations';
import { startPackagedFunction, type InvokeResult, type PackagedFunction } from './lambda-runtime';
import { packageService, PREFIX, type ServicePackage } from './packaged-service';
import { startSlowCollector } from './slow-collector';

// The packaged notify-customer run as Lambda Managed Instances run it: AWS's runtime interface client in its
// multi-concurrent mode, the handler in worker threads, several invocations in flight in each, the environment never
// frozen, and a Runtime API that answers as AWS's Managed Instances emulator does (./lambda-runtime.ts).
const WORKERS = 2;
const PER_WORKER = 8;
const FUNCTION = 'notify-customer';
const NAME = `${PREFIX}${FUNCTION}`;
/** The invocations of the long run: interleaved across the workers, each under a trace of its own. */
const INVOCATIONS = 1_000;
/** How long the slow OTLP receiver takes to answer each export. */
const SLOW_MS = 200;
/**
 * The shutdown test: invocations whose spans the workers all hold at SIGTERM, and a receiver that takes most of the
 * time Lambda leaves before SIGKILL to answer.
 */
const DRAIN_INVOCATIONS = 200;
const DRAIN_RECEIVER_MS = 380;

let pkg: ServicePackage;
const started: PackagedFunction[] = [];

beforeAll(async () => {
  pkg = await packageService('managed-instances-test');
}, 150_000);

afterAll(async () => {
  for (const fn of started) await fn.stop().catch(() => undefined);
  await pkg?.remove();
});

/** notify-customer on Managed Instances, with its template environment (and `overrides`), exporting to `endpoint`. */
async function startOnManagedInstances(endpoint: string, overrides: Record<string, string> = {}): Promise<PackagedFunction> {
  const fn = pkg.functionResource(FUNCTION);
  const running = await startPackagedFunction({
    name: fn.FunctionName,
    taskRoot: await pkg.taskRoot(FUNCTION),
    handler: fn.Handler,
    memoryMb: fn.MemorySize,
    nodePath: pkg.nodePath,
    managedInstances: { workers: WORKERS, maxConcurrency: WORKERS * PER_WORKER },
    // Info: the kit says in the log how it exports.
    environment: pkg.environment(FUNCTION, { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_LOG_LEVEL: 'info', ...overrides }),
  });
  started.push(running);
  return running;
}

/** The order id of an invocation of the run `label`: the function answers with it, and its child span records it. */
const orderIdOf = (label: string, index: number) => `o-${label}-${index}`;

/**
 * Invokes `fn` `count` times, keeping as many in flight as the environment takes, each with a traceparent of its
 * own in the invoke payload's envelope (what traceInvoke sends for an asynchronous invoke).
 */
function invokeOrders(fn: PackagedFunction, count: number, label: string): Promise<SentInvocation[]> {
  return invokeInterleaved(fn, {
    count,
    inFlight: WORKERS * PER_WORKER,
    eventFor: (traceparent, index) => ({
      __otelTraceContext: { traceparent },
      payload: { orderId: orderIdOf(label, index), customerEmail: 'ada@example.com', itemCount: 1 },
    }),
    // Each response reached its own invocation.
    accept: (payload, index) => (payload as { orderId?: string }).orderId === orderIdOf(label, index),
  });
}

/**
 * Every span the receiver got, checked against the invocation whose trace it is on: the entry span a child of the
 * caller's span, the function's own span a child of the entry span, both of that invocation (request id, order id).
 */
function checkSpans(sent: SentInvocation[], spans: ReceivedSpan[], label: string) {
  const byTrace = new Map(sent.map((invocation) => [invocation.traceId, invocation]));
  const onTrace = new Map<string, ReceivedSpan[]>();
  let mismatched = 0;
  for (const span of spans) {
    const invocation = byTrace.get(span.traceId);
    if (!invocation) {
      mismatched++;
      continue;
    }
    onTrace.set(span.traceId, [...(onTrace.get(span.traceId) ?? []), span]);
  }
  let lost = 0;
  for (const invocation of sent) {
    const own = onTrace.get(invocation.traceId) ?? [];
    const entry = own.find((span) => span.name === NAME);
    const child = own.find((span) => span.name === 'send order confirmation');
    lost += (entry ? 0 : 1) + (child ? 0 : 1);
    if (entry && (entry.parentSpanId !== invocation.parentSpanId || entry.attributes['faas.invocation_id'] !== invocation.requestId)) mismatched++;
    if (child && (child.parentSpanId !== entry?.spanId || child.attributes['order.id'] !== orderIdOf(label, invocation.index))) mismatched++;
    mismatched += own.length - (entry ? 1 : 0) - (child ? 1 : 0);
  }
  return { mismatched, lost, coldStarts: spans.filter((span) => span.attributes['faas.coldstart'] === true).length };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

describe('Lambda Managed Instances under the runtime interface client', () => {
  it(`runs ${INVOCATIONS} interleaved invocations over ${WORKERS} workers: every span on its own trace, none lost through the shutdown, no response waiting for the receiver`, async () => {
    const p50: Record<'fast' | 'slow', number> = { fast: 0, slow: 0 };
    for (const [speed, delayMs] of [
      ['fast', 0],
      ['slow', SLOW_MS],
    ] as const) {
      const collector = await startSlowCollector(delayMs);
      try {
        const fn = await startOnManagedInstances(collector.endpoint);
        const sent = await invokeOrders(fn, INVOCATIONS, speed);
        // Interleaved: more in flight than one worker takes, never more than the maximum concurrency (on a loaded
        // machine a worker may not have asked for all of its events at the moment the others were busy), and every
        // worker (its runtime client's connection for responses) had several invocations in flight.
        const { peak, perResponseConnection } = fn.concurrency();
        expect(peak).toBeGreaterThan(PER_WORKER);
        expect(peak).toBeLessThanOrEqual(WORKERS * PER_WORKER);
        expect(
          perResponseConnection.filter((worker) => worker.peak >= PER_WORKER / 2),
          JSON.stringify(perResponseConnection),
        ).toHaveLength(WORKERS);
        // Spans the workers still hold when Lambda ends the environment: SIGTERM, SIGKILL 600 ms later.
        const beforeShutdown = collector.spans().length;
        await fn.stop({ graceful: true });
        expect(fn.exitStatus()).toEqual({ code: null, signal: 'SIGTERM' });
        expect(beforeShutdown).toBeLessThan(2 * INVOCATIONS);

        const spans = collector.spans();
        expect(checkSpans(sent, spans, speed), fn.logs()).toEqual({ mismatched: 0, lost: 0, coldStarts: 0 });
        expect(spans).toHaveLength(2 * INVOCATIONS);
        // Each worker's kit says once how it exports; none exports inside an invocation.
        const modes = fn
          .logs()
          .split('\n')
          .filter((line) => line.includes('traced-lambda: spans are exported'));
        expect(modes).toHaveLength(WORKERS);
        for (const line of modes) expect(line).toContain('spans are exported in the background');
        expect(fn.logs()).not.toMatch(/\t(WARN|ERROR)\t/);
        p50[speed] = median(sent.map((invocation) => invocation.responseMs));
      } finally {
        await collector.close();
      }
    }
    // Exporting inside each invocation, every response waited for the receiver (p50 209 ms at 200 ms).
    expect(p50.slow, JSON.stringify(p50)).toBeLessThan(p50.fast + SLOW_MS / 4);
  }, 60_000);

  it(`exports everything the workers hold at SIGTERM before the SIGKILL, with a receiver answering after ${DRAIN_RECEIVER_MS} ms`, async () => {
    const collector = await startSlowCollector(DRAIN_RECEIVER_MS);
    try {
      // Nothing leaves before the shutdown: both workers hold every span of their invocations when the SIGTERM comes.
      const fn = await startOnManagedInstances(collector.endpoint, { TRACED_LAMBDA_EXPORT_MAX_DELAY_MS: '60000' });
      const sent = await invokeOrders(fn, DRAIN_INVOCATIONS, 'drain');
      expect(fn.concurrency().perResponseConnection).toHaveLength(WORKERS);
      expect(collector.spans()).toEqual([]);
      // A span counts once the receiver has answered its export: each worker's export must be answered before the
      // process ends (SIGKILL 600 ms after the SIGTERM).
      await fn.stop({ graceful: true });
      expect(fn.exitStatus()).toEqual({ code: null, signal: 'SIGTERM' });
      expect(checkSpans(sent, collector.spans(), 'drain'), fn.logs()).toEqual({ mismatched: 0, lost: 0, coldStarts: 0 });
    } finally {
      await collector.close();
    }
  });

  it('registers the main thread as an internal extension with no events; one that asks for INVOKE is refused', async () => {
    const collector = await startSlowCollector(0);
    try {
      const fn = await startOnManagedInstances(collector.endpoint);
      expect(await fn.invoke({ orderId: 'o-registered', customerEmail: 'ada@example.com', itemCount: 1 })).toMatchObject({ ok: true });
      expect(fn.extensions()).toEqual({ registered: [{ name: 'traced-lambda-after-response', id: expect.any(String), events: [] }], refused: [] });
    } finally {
      await collector.close();
    }

    // A handler that registers at load, as an internal extension would, first asking for INVOKE, then for nothing.
    const taskRoot = join(pkg.work, 'registers');
    await mkdir(join(taskRoot, 'functions'), { recursive: true });
    await writeFile(
      join(taskRoot, 'functions', 'registers.mjs'),
      `const base = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2020-01-01/extension';
const register = async (name, events) => {
  const answer = await fetch(base + '/register', { method: 'POST', headers: { 'Lambda-Extension-Name': name }, body: JSON.stringify({ events }) });
  return { status: answer.status, id: answer.headers.get('lambda-extension-identifier'), body: await answer.json() };
};
const invoke = await register('asks-for-invoke', ['INVOKE']);
const none = await register('asks-for-nothing', []);
// Ready: Lambda's init waits for every registered extension to ask for its next event (none ever comes).
if (none.id) void fetch(base + '/event/next', { headers: { 'Lambda-Extension-Identifier': none.id } }).catch(() => undefined);
export const handler = async (event, context) => ({ invoke, none: none.status, xRayTraceId: context.xRayTraceId ?? null, environment: process.env._X_AMZN_TRACE_ID ?? null });
`,
    );
    const probe = await startPackagedFunction({
      name: 'registers',
      taskRoot,
      handler: 'functions/registers.handler',
      nodePath: pkg.nodePath,
      environment: {},
      managedInstances: { workers: 1, maxConcurrency: 2 },
    });
    started.push(probe);
    const [first, second] = await Promise.all([probe.invoke({}), probe.invoke({})]);
    expect(first).toMatchObject({
      ok: true,
      payload: {
        invoke: { status: 403, body: { errorType: 'Extension.InvalidEventType', errorMessage: 'No events allowed for internal extensions' } },
        none: 200,
        // No _X_AMZN_TRACE_ID on Managed Instances: each invocation's X-Ray header reaches its own context.
        xRayTraceId: expect.stringMatching(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0/),
        environment: null,
      },
    });
    const traceHeaderOf = (result: InvokeResult) => (result.ok ? (result.payload as { xRayTraceId?: string }).xRayTraceId : undefined);
    expect(second).toMatchObject({ ok: true, payload: { xRayTraceId: expect.any(String) } });
    expect(traceHeaderOf(second)).not.toBe(traceHeaderOf(first));
    expect(probe.extensions()).toEqual({
      registered: [{ name: 'asks-for-nothing', id: expect.any(String), events: [] }],
      refused: [{ name: 'asks-for-invoke', errorType: 'Extension.InvalidEventType' }],
    });
  });
});
