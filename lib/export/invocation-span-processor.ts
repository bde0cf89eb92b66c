import { createContextKey, diag, SpanStatusCode, TraceFlags, type Context } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { PreparedRequest } from './exit-export';

/** An exporter that promises to call back within `settlesWithinMs`, whatever the backend does. */
export interface BoundedSpanExporter extends SpanExporter {
  readonly settlesWithinMs: number;
  /**
   * Sends `spans` while the process is exiting, with nothing asynchronous left to do (see exit-export.ts), blocking
   * at most `maxWaitMs`: how many spans were accepted, or why none could be sent (a request that must be signed, a
   * secret header not read yet).
   */
  exportBeforeExit?(spans: ReadableSpan[], maxWaitMs: number): number | string;
  /** The requests that send `spans`, signed, by promise callbacks alone (no timer, no I/O); or why they cannot be. */
  prepareBeforeCrash?(spans: ReadableSpan[]): Promise<PreparedRequest[] | string>;
  /**
   * Sends `requests`, and the requests posted earlier that are not on their way yet (abandoned and sent again), from a
   * worker thread while this thread waits at most `maxWaitMs`: the spans accepted, of how many.
   */
  sendBeforeCrash?(requests: PreparedRequest[], maxWaitMs: number): { sent: number; of: number };
}

/**
 * The request id of the invocation a span belongs to, in the context it starts in: set where the invocation's entry
 * span starts (`invocationContext`), so that it and every span started inside the invocation carry it.
 */
export const INVOCATION_ID_KEY = createContextKey('traced-lambda invocation id');

/** Spans kept for a later export when they have no invocation, or were still running when theirs ended. */
const MAX_UNOWNED_SPANS = 4096;
/** Invocations whose spans are kept apart at once (more than a process ever runs concurrently). */
const MAX_PENDING_INVOCATIONS = 64;

/**
 * Holds each invocation's spans and exports them in one request when that invocation flushes. One process may
 * run several invocations at once (Lambda Managed Instances, a middy stack, tests): each flush exports only its
 * own invocation's spans, with the spans that belong to no invocation. No timers run between invocations (a
 * frozen Lambda sandbox must not owe a background export), and one request per invocation keeps the flush cheap
 * on a keep-alive connection.
 */
export class InvocationSpanProcessor implements SpanProcessor {
  /**
   * Spans by the invocation they started in, kept from their start (nothing to look up when they end). The
   * invocation whose span started last has its own slot: one invocation at a time, the usual case, needs no map.
   */
  private readonly byInvocation = new Map<string, Span[]>();
  private lastInvocationId: string | undefined;
  private lastInvocationSpans: Span[] = [];
  /** Spans started outside any invocation, and spans still running when their invocation flushed. */
  private unowned: Span[] = [];
  /** When the oldest of `unowned` was kept (epoch ms): how long held spans have waited. */
  private unownedSince: number | undefined;
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

  onStart(span: Span, parentContext: Context): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    const invocationId = parentContext.getValue(INVOCATION_ID_KEY) as string | undefined;
    if (invocationId === undefined) {
      this.keepUnowned(span);
      return;
    }
    if (invocationId === this.lastInvocationId) {
      this.lastInvocationSpans.push(span);
      return;
    }
    // Another invocation: the last one's spans move to the map, this one takes the slot.
    if (this.lastInvocationId !== undefined && this.lastInvocationSpans.length > 0) {
      this.byInvocation.set(this.lastInvocationId, this.lastInvocationSpans);
      // An invocation that never flushes (its end never reported) must not hold its spans forever: past this
      // many, the oldest one's spans go with the next flush of any invocation.
      if (this.byInvocation.size > MAX_PENDING_INVOCATIONS) {
        const [oldest, spans] = this.byInvocation.entries().next().value!;
        this.byInvocation.delete(oldest);
        for (const pending of spans) this.keepUnowned(pending);
      }
    }
    this.lastInvocationId = invocationId;
    const earlier = this.byInvocation.get(invocationId);
    if (earlier) this.byInvocation.delete(invocationId);
    this.lastInvocationSpans = earlier ?? [];
    this.lastInvocationSpans.push(span);
  }

  onEnd(): void {}

  /** Exports every span that has ended so far. Never rejects: telemetry trouble must not reach the handler. */
  forceFlush(): Promise<void> {
    return this.flushWithin(this.timeoutMs);
  }

  /**
   * Exports the spans of invocation `invocationId` that have ended, with the ended spans of no invocation (every
   * ended span when no id is given), waiting at most `maxWaitMs` (and never longer than the configured timeout):
   * the export keeps going after that, but the invocation does not wait for it.
   */
  flushWithin(maxWaitMs: number, invocationId?: string): Promise<void> {
    const batch = this.takeEnded(invocationId);
    if (batch.length === 0) return Promise.resolve();
    return this.exportWithin(batch, Math.max(0, Math.min(maxWaitMs, this.timeoutMs))).then((result) => this.report(result, notExported(result, batch.length)));
  }

  /**
   * Ends every span of invocation `invocationId` that is still running (every running span the processor holds
   * when no id is given), after `mark` has recorded why on it; `outermost` is true for a span whose parent is not
   * among them (the entry span, a record's span). Children end before their parents. Returns how many it ended.
   */
  endRunning(invocationId: string | undefined, mark: (span: Span, outermost: boolean) => void): number {
    const held =
      invocationId === undefined
        ? [this.lastInvocationSpans, ...this.byInvocation.values(), this.unowned].flat()
        : invocationId === this.lastInvocationId
          ? this.lastInvocationSpans
          : (this.byInvocation.get(invocationId) ?? []);
    const running = held.filter((span) => !span.ended);
    const ids = new Set(running.map((span) => span.spanContext().spanId));
    for (let index = running.length - 1; index >= 0; index--) {
      const span = running[index];
      const parentId = span.parentSpanContext?.spanId;
      try {
        mark(span, parentId === undefined || !ids.has(parentId));
      } finally {
        span.end();
      }
    }
    return running.length;
  }

  /**
   * Holds the spans of invocation `invocationId` for a later export (ExportScheduler): they join the spans of no
   * invocation, exported with the next flush of any invocation or everything.
   */
  hold(invocationId: string): void {
    let owned: Span[] | undefined;
    if (invocationId === this.lastInvocationId) {
      owned = this.lastInvocationSpans;
      this.lastInvocationId = undefined;
      this.lastInvocationSpans = [];
    } else {
      owned = this.byInvocation.get(invocationId);
      this.byInvocation.delete(invocationId);
    }
    if (owned) for (const span of owned) this.keepUnowned(span);
  }

  /** True when a span of invocation `invocationId` ended in error (its status). */
  failed(invocationId: string): boolean {
    const spans = invocationId === this.lastInvocationId ? this.lastInvocationSpans : this.byInvocation.get(invocationId);
    return spans?.some((span) => span.status.code === SpanStatusCode.ERROR) ?? false;
  }

  /** Spans waiting for the next export of any invocation (held ones, those of no invocation). */
  get heldCount(): number {
    return this.unowned.length;
  }

  /** Since when (epoch ms) the oldest held span has waited. */
  get heldSince(): number | undefined {
    return this.unownedSince;
  }

  /** The ended spans a flush exports; the ones still running wait, unowned, for a later flush. */
  private takeEnded(invocationId: string | undefined): ReadableSpan[] {
    let owned: Span[] | undefined;
    if (invocationId !== undefined && invocationId === this.lastInvocationId) {
      owned = this.lastInvocationSpans;
      this.lastInvocationId = undefined;
      this.lastInvocationSpans = [];
    } else if (invocationId !== undefined) {
      owned = this.byInvocation.get(invocationId);
      this.byInvocation.delete(invocationId);
    } else {
      if (this.lastInvocationId !== undefined) this.byInvocation.set(this.lastInvocationId, this.lastInvocationSpans);
      this.lastInvocationId = undefined;
      this.lastInvocationSpans = [];
      owned = this.byInvocation.size === 0 ? undefined : [...this.byInvocation.values()].flat();
      this.byInvocation.clear();
    }
    const unowned = this.unowned;
    if (unowned.length > 0) {
      this.unowned = [];
      this.unownedSince = undefined;
    }
    // The usual cases: one invocation's spans, or only spans of none, all ended: exported as they are.
    if (unowned.length === 0 && owned !== undefined && owned.every(hasEnded)) return owned;
    if (owned === undefined && unowned.every(hasEnded)) return unowned;
    const batch: Span[] = [];
    for (const spans of owned ? [owned, unowned] : [unowned]) {
      for (const span of spans) {
        if (span.ended) batch.push(span);
        else this.keepUnowned(span);
      }
    }
    return batch;
  }

  private keepUnowned(span: Span): void {
    if (this.unowned.length >= MAX_UNOWNED_SPANS) {
      // A span that never ends would otherwise be kept forever: the oldest goes, and is counted as not exported.
      const dropped = this.unowned.shift()!;
      const state = dropped.ended ? 'ended' : 'still running';
      const error = new Error(
        `${MAX_UNOWNED_SPANS} spans were kept for a later export (still running when their invocation ended, or started outside any invocation), and the oldest ("${dropped.name}", ${state}) was dropped`,
      );
      this.report({ code: ExportResultCode.FAILED, error }, 1);
    }
    if (this.unowned.length === 0) this.unownedSince = Date.now();
    this.unowned.push(span);
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

  /**
   * The process is exiting (`process.exit()`), when nothing asynchronous can run any more: sends every ended span
   * from a worker thread, this thread blocked until they are answered or `maxWaitMs` passed. Returns how many
   * spans were accepted, or why none could be sent.
   */
  exportBeforeExit(maxWaitMs: number): { sent: number; of: number } | string {
    const batch = this.takeEnded(undefined);
    if (batch.length === 0) return { sent: 0, of: 0 };
    const exporter = (this.exporter ??= this.createExporter()) as Partial<BoundedSpanExporter>;
    const sent = exporter.exportBeforeExit ? exporter.exportBeforeExit(batch, Math.min(maxWaitMs, this.timeoutMs)) : 'the exporter cannot send without waiting';
    return typeof sent === 'string' ? sent : { sent, of: batch.length };
  }

  /**
   * The process is crashing, and must end before the event loop gets another turn (crash-export.ts): every ended
   * span, and every request posted but not yet on its way, is sent from a worker thread while this thread waits, at
   * most `maxWaitMs`. Signing runs first, in promise callbacks only. Returns how many spans were accepted, or why
   * none could be sent.
   */
  async exportBeforeCrash(maxWaitMs: number): Promise<{ sent: number; of: number } | string> {
    const batch = this.takeEnded(undefined);
    if (batch.length === 0 && this.inFlight.size === 0) return { sent: 0, of: 0 };
    const exporter = (this.exporter ??= this.createExporter()) as Partial<BoundedSpanExporter>;
    if (!exporter.prepareBeforeCrash || !exporter.sendBeforeCrash) {
      // An exporter of the SDK's kind (console, in-memory) takes its spans at once, or not before the next turn.
      if (batch.length > 0) void this.exportWithin(batch, maxWaitMs);
      return 'the exporter cannot send without waiting';
    }
    const prepared = batch.length > 0 ? await exporter.prepareBeforeCrash(batch) : [];
    if (typeof prepared === 'string') return prepared;
    // After the callbacks queued before this one: a request posted just before the crash is written to its
    // kept-alive socket in one of them. Those still not on their way are sent again.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    return exporter.sendBeforeCrash(prepared, Math.min(maxWaitMs, this.timeoutMs));
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

const hasEnded = (span: ReadableSpan) => span.ended;

/** How many of an export's spans a failure lost: all of them, unless the exporter says how many (a split export). */
function notExported(result: ExportResult, count: number): number {
  const said = (result.error as { notExported?: unknown } | undefined)?.notExported;
  return typeof said === 'number' ? said : count;
}
