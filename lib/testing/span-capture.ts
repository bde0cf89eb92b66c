import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { readTelemetryConfig } from '../config';
import { startTelemetry, type Telemetry } from '../telemetry';

/**
 * Keeps exported spans in memory and completes each export at once (the stock in-memory exporter finishes
 * on a timer, which slows every flush and makes tests wait).
 */
export class MemorySpanExporter implements SpanExporter {
  readonly spans: ReadableSpan[] = [];

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.spans.push(...spans);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  async shutdown(): Promise<void> {}

  async forceFlush(): Promise<void> {}
}

export interface SpanCapture {
  telemetry: Telemetry;
  /** Spans exported so far, in the order they ended. */
  spans(): ReadableSpan[];
  /** The one span with this name; throws when there is none or several. */
  span(name: string): ReadableSpan;
  reset(): void;
}

/**
 * Starts tracing with an in-memory exporter and makes it the active set-up, as the wrappers will find it.
 * `env` holds the `OTEL_*`/`AWS_*` variables the test wants (none by default).
 */
export function captureSpans(env: Record<string, string | undefined> = {}): SpanCapture {
  const exporter = new MemorySpanExporter();
  const telemetry = startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'test', ...env }), { exporter });
  return {
    telemetry,
    spans: () => [...exporter.spans],
    span(name) {
      const found = exporter.spans.filter((span) => span.name === name);
      if (found.length !== 1) {
        const names = exporter.spans.map((span) => span.name).join(', ');
        throw new Error(`expected one span named "${name}", found ${found.length} (spans: ${names || 'none'})`);
      }
      return found[0];
    },
    reset: () => {
      exporter.spans.length = 0;
    },
  };
}
