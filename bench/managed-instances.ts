/**
 * The benchmark's Lambda Managed Instances figures: ours as deployed, loaded by AWS's runtime interface client in its
 * multi-concurrent mode (worker threads, several invocations in flight in each, never frozen) against the local
 * Runtime API's Managed Instances mode (test/runtime/lambda-runtime.ts). Each invocation carries a trace of its own;
 * the spans are checked against the invocation whose trace they are on, and counted after the environment is ended
 * as Lambda ends it (SIGTERM, then SIGKILL).
 */
import type { ReceivedSpan } from '../scripts/offline/otlp-receiver';
import { invokeInterleaved, type SentInvocation } from '../test/runtime/interleaved-invocations';
import { startPackagedFunction } from '../test/runtime/lambda-runtime';
import { startSlowCollector } from '../test/runtime/slow-collector';
import { apiEvent } from './events';
import type { RuntimeVariant } from './under-runtime';

export const MANAGED_WORKERS = 2;
export const MANAGED_PER_WORKER = 8;
/** The slow receiver's delay: the measurement of exporting inside each invocation used 200 ms. */
export const MANAGED_SLOW_MS = 200;

export type ManagedStrategy = 'background' | 'invocation';

export interface ManagedRun {
  /** Response times at the Runtime API, ms. */
  responseMs: number[];
  /** Spans on no invocation's trace, or on one but under the wrong parent or invocation. */
  mismatched: number;
  /** Spans an invocation should have delivered and that never arrived, SIGTERM included. */
  lost: number;
  expected: number;
}

export type ManagedMeasurements = Record<ManagedStrategy, Record<'fast' | 'slow', ManagedRun>>;

/** Checks every received span against the invocation whose trace it is on, `perInvocation` spans each. */
function check(sent: SentInvocation[], spans: ReceivedSpan[], perInvocation: number): Omit<ManagedRun, 'responseMs'> {
  const byTrace = new Map(sent.map((invocation) => [invocation.traceId, { invocation, spans: [] as ReceivedSpan[] }]));
  let mismatched = 0;
  for (const span of spans) {
    const own = byTrace.get(span.traceId);
    if (own) own.spans.push(span);
    else mismatched++;
  }
  let lost = 0;
  for (const { invocation, spans: own } of byTrace.values()) {
    lost += Math.max(0, perInvocation - own.length);
    const ids = new Set(own.map((span) => span.spanId));
    for (const span of own) {
      const isEntry = span.parentSpanId === invocation.parentSpanId;
      if (isEntry ? span.attributes['faas.invocation_id'] !== invocation.requestId : !ids.has(span.parentSpanId ?? '')) mismatched++;
    }
  }
  return { mismatched, lost, expected: perInvocation * sent.length };
}

/**
 * `invocations` API requests, interleaved over the workers, for ours as deployed (its default on Managed Instances:
 * export in the background) and for ours exporting inside each invocation (TRACED_LAMBDA_EXPORT_STRATEGY=invocation),
 * each against a receiver answering at once and one `MANAGED_SLOW_MS` away.
 */
export async function measureManagedInstances(ours: RuntimeVariant, invocations: number, perInvocation: number): Promise<ManagedMeasurements> {
  const result = {} as ManagedMeasurements;
  for (const strategy of ['background', 'invocation'] as const) {
    result[strategy] = {} as never;
    for (const [speed, delayMs] of [
      ['fast', 0],
      ['slow', MANAGED_SLOW_MS],
    ] as const) {
      const collector = await startSlowCollector(delayMs);
      try {
        const fn = await startPackagedFunction({
          name: `bench-managed-${strategy}`,
          taskRoot: ours.dir,
          handler: ours.handler,
          nodePath: '',
          managedInstances: { workers: MANAGED_WORKERS, maxConcurrency: MANAGED_WORKERS * MANAGED_PER_WORKER },
          environment: {
            OTEL_SERVICE_NAME: 'bench',
            OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
            ...ours.environment,
            ...(strategy === 'invocation' ? { TRACED_LAMBDA_EXPORT_STRATEGY: 'invocation' } : {}),
          },
        });
        let sent: SentInvocation[];
        try {
          sent = await invokeInterleaved(fn, {
            count: invocations,
            inFlight: MANAGED_WORKERS * MANAGED_PER_WORKER,
            eventFor: (traceparent) => {
              const event = apiEvent();
              return { ...event, headers: { ...event.headers, traceparent } };
            },
            accept: (payload) => (payload as { statusCode?: number }).statusCode === 202,
          });
        } finally {
          await fn.stop({ graceful: true });
        }
        result[strategy][speed] = { responseMs: sent.map((invocation) => invocation.responseMs), ...check(sent, collector.spans(), perInvocation) };
      } finally {
        await collector.close();
      }
    }
  }
  return result;
}
