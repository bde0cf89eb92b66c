// When the spans of ended invocations leave the function: one decision for every way Lambda runs it. Each ended
// invocation's spans are either exported at once (alone, or with those held before them) or held for an export
// shared with the invocations that follow, on two bounds: how long the first held span may wait, and how many spans
// may be held. On-demand Lambda freezes the sandbox between invocations, so held spans go out at the end of a later
// invocation (after its response, through the extension) or at SIGTERM; on Lambda Managed Instances, never frozen,
// they go out in the background, from a timer.
import type { ExportPolicySettings } from '../config';

/** What the scheduler needs of the span processor: the spans held for a later export, and the export itself. */
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

export class ExportScheduler {
  /** When the last invocation ended, and how long the sandbox was idle before the last one began (ms). */
  private lastEndedAt: number | undefined;
  private lastIdleMs = Number.POSITIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly settings: ExportPolicySettings,
    private readonly spans: HeldSpans,
    readonly life: SandboxLife,
    /** Upper bound for one background export (the flush timeout). */
    private readonly exportTimeoutMs: number,
  ) {}

  /** Held spans are exported from a timer, never inside an invocation (the environment is never frozen). */
  get inBackground(): boolean {
    return this.life === 'never-frozen' && this.settings.strategy !== 'invocation';
  }

  /** An invocation began: how long the sandbox was idle tells dense traffic from sparse. */
  began(now = Date.now()): void {
    if (this.lastEndedAt !== undefined) this.lastIdleMs = Math.max(0, now - this.lastEndedAt);
  }

  /**
   * An invocation has ended (its spans are known): true when they must be exported now, with those held before
   * them; false when they may be held (`hold`). Sparse traffic under `adaptive`, a full batch or a batch held for
   * `maxDelayMs` export now: a frozen sandbox holds its spans until its next invocation. So does an invocation that
   * failed: its trace is the one looked for, and it may be the last before the traffic stops.
   */
  exportsNow(invocationId: string, now = Date.now()): boolean {
    this.lastEndedAt = now;
    const { strategy, maxDelayMs, maxBatchSpans } = this.settings;
    if (strategy === 'invocation' || this.spans.failed(invocationId)) return true;
    if (this.spans.heldCount >= maxBatchSpans) return true;
    const since = this.spans.heldSince;
    if (since !== undefined && now - since >= maxDelayMs) return true;
    // Sparse: the next invocation is not expected before the held spans would be due (half the delay, so that
    // steady traffic at that pace still exports within it).
    return strategy === 'adaptive' && this.lastIdleMs > maxDelayMs / 2;
  }

  /** Holds the spans of an ended invocation for a shared export; in the background, arms its timer (or exports a full batch). */
  hold(invocationId: string): void {
    this.spans.hold(invocationId);
    if (!this.inBackground) return;
    if (this.spans.heldCount >= this.settings.maxBatchSpans) {
      this.exportHeld();
      return;
    }
    if (this.timer === undefined) {
      // Unref'd: a held span never keeps a process alive (SIGTERM exports what is held).
      this.timer = setTimeout(() => this.exportHeld(), this.settings.maxDelayMs).unref();
    }
  }

  /** The background export: everything held, outside any invocation. */
  private exportHeld(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    void this.spans.flushWithin(this.exportTimeoutMs);
  }
}
