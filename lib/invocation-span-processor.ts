import { diag, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';

/** An exporter that promises to call back within `settlesWithinMs`, whatever the backend does. */
export interface BoundedSpanExporter extends SpanExporter {
  readonly settlesWithinMs: number;
}

/**
 * Holds the spans that end during an invocation and exports them in one request when the invocation
 * flushes. No timers run between invocations (a frozen Lambda sandbox must not owe a background export),
 * and one request per invocation keeps the flush cheap on a keep-alive connection.
 */
export class InvocationSpanProcessor implements SpanProcessor {
  private pending: ReadableSpan[] = [];
  private exporter: SpanExporter | undefined;
  /** Spans lost since the last export that succeeded: the first failure is logged, the rest counted. */
  private unexportedSpans = 0;
  /** Exports the exporter has not answered yet, including those an invocation stopped waiting for. */
  private readonly inFlight = new Set<Promise<void>>();

  /**
   * @param createExporter called on the first flush, so that exporter modules load only when needed.
   * @param timeoutMs upper bound for one export; a slow backend never holds the function longer.
   */
  constructor(
    private readonly createExporter: () => SpanExporter,
    private readonly timeoutMs: number,
  ) {}

  onStart(_span: Span): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    this.pending.push(span);
  }

  /** Exports what has ended so far. Never rejects: telemetry trouble must not reach the handler. */
  forceFlush(): Promise<void> {
    return this.flushWithin(this.timeoutMs);
  }

  /**
   * As `forceFlush`, waiting at most `maxWaitMs` (and never longer than the configured timeout): the export
   * keeps going after that, but the invocation does not wait for it.
   */
  flushWithin(maxWaitMs: number): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = [];
    return this.exportWithin(batch, Math.max(0, Math.min(maxWaitMs, this.timeoutMs))).then((result) => this.report(result, batch.length));
  }

  /** Says once that spans are being lost (not once per invocation), and how many when exports work again. */
  private report(result: ExportResult, count: number): void {
    if (result.code === ExportResultCode.SUCCESS) {
      if (this.unexportedSpans > 0) diag.warn(`traced-lambda: spans are exported again; ${this.unexportedSpans} span(s) could not be exported before.`);
      this.unexportedSpans = 0;
      return;
    }
    const reason = result.error?.message ?? 'unknown error';
    if (this.unexportedSpans === 0) {
      diag.warn(`traced-lambda: could not export ${count} span(s): ${reason}. Further failures are counted until an export succeeds.`);
    } else {
      diag.debug(`traced-lambda: could not export ${count} more span(s): ${reason}`);
    }
    this.unexportedSpans += count;
  }

  /**
   * Exports what is pending and waits for every export still in flight (an invocation may have stopped waiting
   * for one), at most `maxWaitMs`: what a process does when it is told to end.
   */
  async drain(maxWaitMs: number): Promise<void> {
    const until = Date.now() + maxWaitMs;
    await this.flushWithin(maxWaitMs);
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.inFlight), new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, until - Date.now()))))]);
    clearTimeout(timer);
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    await this.exporter?.shutdown().catch(() => undefined);
  }

  private exportWithin(batch: ReadableSpan[], waitMs: number): Promise<ExportResult> {
    return new Promise<ExportResult>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const done = (result: ExportResult) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        resolve(result);
      };
      let answered!: () => void;
      const flight = new Promise<void>((resolve) => (answered = resolve));
      this.inFlight.add(flight);
      const settle = (result: ExportResult) => {
        this.inFlight.delete(flight);
        answered();
        done(result);
      };
      try {
        this.exporter ??= this.createExporter();
        this.exporter.export(batch, settle);
      } catch (error) {
        settle({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
      }
      // Armed only for an export still in flight, and only when the exporter does not itself settle in time:
      // an exporter that answers at once, or one whose own deadline comes first, costs no second timer.
      const settlesWithinMs = (this.exporter as Partial<BoundedSpanExporter> | undefined)?.settlesWithinMs;
      if (!settled && !(typeof settlesWithinMs === 'number' && settlesWithinMs <= waitMs)) {
        timer = setTimeout(() => done({ code: ExportResultCode.FAILED, error: new Error(`export not finished after ${waitMs} ms`) }), waitMs);
      }
    });
  }
}
