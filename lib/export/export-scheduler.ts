// When the spans of ended invocations leave the function: the one owner of that decision, made for every way Lambda
// runs it and held by the telemetry set-up, which starts it. The wrappers only say when an invocation begins and
// ends. Its policy is chosen once from the environment:
// - `in-invocation`: no extension serves events here (offline, tests, a failed registration): each invocation
//   exports its spans before its result is returned;
// - `after-response`: the internal Lambda extension (after-response.ts) follows the invocations, and each ended
//   invocation's spans are either exported after its response (alone, or with those held before them) or held for
//   an export shared with the invocations that follow, on two bounds: how long the first held span may wait, and
//   how many spans may be held. The sandbox is frozen between invocations, so held spans go out at the end of a
//   later invocation, or at SIGTERM;
// - `background` (Lambda Managed Instances, never frozen): every ended invocation's spans are held, and go out from
//   a timer or once the batch is full, never inside an invocation; at shutdown the main thread asks for them.
import type { ExportPolicySettings } from '../config';
import { connectAfterResponse, describeExportMode, type AfterResponseConnection, type AfterResponseLink, type ExportMode } from './after-response';
import { drainOnShutdown } from './shutdown-channel';

/** What the scheduler needs of the span processor: the spans held for a later export. */
export interface HeldSpans {
  /** Moves the spans of invocation `invocationId` to those exported with the next flush of any invocation. */
  hold(invocationId: string): void;
  /** How many spans are held, and since when (epoch ms) the oldest has been. */
  readonly heldCount: number;
  readonly heldSince: number | undefined;
  /** True when a span of invocation `invocationId` ended in error. */
  failed(invocationId: string): boolean;
  /** Exports every ended span (held ones included), waiting at most `maxWaitMs`; never rejects. */
  flushWithin(maxWaitMs: number, invocationId?: string): Promise<void>;
}

/** How the sandbox runs between invocations: `frozen` (on-demand Lambda) or `never-frozen` (Managed Instances). */
export type SandboxLife = 'frozen' | 'never-frozen';

export interface ExportSchedulerOptions {
  settings: ExportPolicySettings;
  life: SandboxLife;
  /** Upper bound for one background export (the flush timeout). */
  exportTimeoutMs: number;
  /** Exports the ended spans of one invocation with those of no invocation (every ended span without an id). */
  flush(maxWaitMs: number, invocationId?: string): Promise<void>;
  /** Exports what is pending and waits for exports in flight, at most `maxWaitMs` (shutdown). */
  drain(maxWaitMs: number): Promise<void>;
  /** The exporting processor's spans; absent when the kit exports nothing itself (each invocation then flushes). */
  spans?: HeldSpans;
  /** The preload's extension link in this process, when it was loaded. */
  link: AfterResponseLink | undefined;
  /** A Lambda Runtime API is here: the log then says why spans are not exported after the response. */
  hasRuntimeApi: boolean;
}

export class ExportScheduler {
  private readonly settings: ExportPolicySettings;
  /** Held spans are exported from a timer, never inside an invocation (the environment is never frozen). */
  readonly inBackground: boolean;
  private readonly spans: HeldSpans | undefined;
  private readonly flush: ExportSchedulerOptions['flush'];
  private readonly exportTimeoutMs: number;
  /** The extension's side, while it serves events (after-response). */
  private readonly extension: AfterResponseConnection | undefined;
  private readonly shutdownChannel: { close(): void } | undefined;
  /** When the last invocation ended, and how long the sandbox was idle before the last one began (ms). */
  private lastEndedAt: number | undefined;
  private lastIdleMs = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ExportSchedulerOptions) {
    this.settings = options.settings;
    this.spans = options.spans;
    this.flush = options.flush;
    this.exportTimeoutMs = options.exportTimeoutMs;
    this.inBackground = options.spans !== undefined && options.life === 'never-frozen' && options.settings.strategy !== 'invocation';
    if (this.inBackground) {
      // The main thread's SIGTERM asks this thread to export what it holds (shutdown-channel.ts). Managed Instances'
      // preload registers for no events: its link is never `registered`, so no extension connects there.
      this.shutdownChannel = drainOnShutdown(options.drain);
    } else {
      this.extension = connectAfterResponse(options.link, { flush: options.flush, drain: options.drain, schedule: this });
    }
    describeExportMode(options.link, this.mode(), options.hasRuntimeApi);
  }

  /** Where ended invocations export now: the extension may stop serving events, and then the invocations export. */
  mode(): ExportMode {
    if (this.inBackground) return 'background';
    return this.extension?.afterResponse.active ? 'after-response' : 'in-invocation';
  }

  /** An invocation began (its wrapper entered the handler): how long the sandbox was idle tells dense traffic from sparse. */
  began(invocationId: string | undefined, now = Date.now()): void {
    if (this.lastEndedAt !== undefined) this.lastIdleMs = Math.max(0, now - this.lastEndedAt);
    if (invocationId !== undefined) this.extension?.afterResponse.started(invocationId);
  }

  /**
   * An invocation's spans have ended: handed to the extension or held for the background export (undefined: nothing
   * to wait for), or exported now within `budgetMs` (the promise the invocation waits for before returning).
   */
  ended(invocationId: string | undefined, budgetMs: number | undefined): Promise<void> | undefined {
    if (invocationId !== undefined) {
      if (this.extension?.afterResponse.active) {
        this.extension.afterResponse.ended(invocationId);
        return undefined;
      }
      if (this.inBackground) {
        this.hold(invocationId);
        return undefined;
      }
    }
    return this.flush(budgetMs ?? Number.POSITIVE_INFINITY, invocationId);
  }

  /** The invocation exported its own spans (the timeout guard did): the extension may let Lambda go on. */
  exportedBy(invocationId: string | undefined): void {
    if (invocationId !== undefined && this.extension?.afterResponse.active) this.extension.afterResponse.ended(invocationId);
  }

  /**
   * An invocation has ended (its spans are known; asked by the extension's side): true when they must be exported
   * now, with those held before them; false when they may be held (`hold`). Sparse traffic under `adaptive`, a full
   * batch or a batch held for `maxDelayMs` export now: a frozen sandbox holds its spans until its next invocation.
   * So does an invocation that failed: its trace is the one looked for, and it may be the last before the traffic
   * stops.
   */
  exportsNow(invocationId: string, now = Date.now()): boolean {
    this.lastEndedAt = now;
    const { strategy, maxDelayMs, maxBatchSpans } = this.settings;
    const spans = this.spans;
    if (strategy === 'invocation' || !spans || spans.failed(invocationId)) return true;
    if (spans.heldCount >= maxBatchSpans) return true;
    const since = spans.heldSince;
    if (since !== undefined && now - since >= maxDelayMs) return true;
    // Sparse: the next invocation is not expected before the held spans would be due (half the delay, so that
    // steady traffic at that pace still exports within it).
    return strategy === 'adaptive' && this.lastIdleMs > maxDelayMs / 2;
  }

  /** Holds the spans of an ended invocation for a shared export; in the background, arms its timer (or exports a full batch). */
  hold(invocationId: string): void {
    const spans = this.spans;
    if (!spans) return;
    spans.hold(invocationId);
    if (!this.inBackground) return;
    if (spans.heldCount >= this.settings.maxBatchSpans) {
      this.exportHeld();
      return;
    }
    if (this.timer === undefined) {
      // Unref'd: a held span never keeps a process alive (SIGTERM exports what is held).
      this.timer = setTimeout(() => this.exportHeld(), this.settings.maxDelayMs).unref();
    }
  }

  /** This set-up is replaced: the extension serves the next one, and this one's shutdown hooks go. */
  close(): void {
    this.extension?.disconnect();
    this.shutdownChannel?.close();
  }

  /** The background export: everything held, outside any invocation. */
  private exportHeld(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    void this.spans?.flushWithin(this.exportTimeoutMs);
  }
}
