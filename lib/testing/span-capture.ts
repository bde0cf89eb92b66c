import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import { readTelemetryConfig } from '../config';
import { startTelemetry, type Telemetry } from '../telemetry';

/**
 * Keeps exported spans in memory and completes each export at once (the stock in-memory exporter finishes
 * on a timer, which slows every flush and makes tests wait). Use it to test what a flush exports.
 */
export class MemorySpanExporter implements SpanExporter {
  readonly spans: ReadableSpan[] = [];

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.spans.push(...spans);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  async shutdown(): Promise<void> {}
}

/** Records every span as it ends, inside or outside an invocation, with no export step. */
class EndedSpanRecorder implements SpanProcessor {
  readonly spans: ReadableSpan[] = [];
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.spans.push(span);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

export interface SpanCapture {
  telemetry: Telemetry;
  /** Spans ended so far, in the order they ended. */
  spans(): ReadableSpan[];
  /** The one span with this name; throws when there is none or several. */
  span(name: string): ReadableSpan;
  reset(): void;
}

/**
 * Starts tracing that records spans in memory and makes it the active set-up, as the wrappers will find it.
 * `env` holds the `OTEL_*`/`AWS_*` variables the test wants (none by default).
 */
export function captureSpans(env: Record<string, string | undefined> = {}): SpanCapture {
  const recorder = new EndedSpanRecorder();
  const config = readTelemetryConfig({ OTEL_SERVICE_NAME: 'test', OTEL_TRACES_EXPORTER: 'none', ...env });
  const telemetry = startTelemetry(config, { spanProcessors: [recorder] });
  return {
    telemetry,
    spans: () => [...recorder.spans],
    span(name) {
      const found = recorder.spans.filter((span) => span.name === name);
      if (found.length !== 1) {
        const names = recorder.spans.map((span) => span.name).join(', ');
        throw new Error(`expected one span named "${name}", found ${found.length} (spans: ${names || 'none'})`);
      }
      return found[0];
    },
    reset: () => {
      recorder.spans.length = 0;
    },
  };
}
