// The timeout guard: shortly before an invocation's deadline, its spans still open are ended as timed out and
// exported. Lambda stops a function at its deadline (the environment is reset, with no signal the kit can count
// on), so an invocation that runs out of time would otherwise never end its entry span and leave no trace at all.
import { diag, SpanStatusCode, type Span } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { ATTR_ERROR_TYPE } from '../semconv';
import type { Telemetry } from '../telemetry';

/** The exception event's `exception.type` on the spans the guard ends. */
export const TIMEOUT_EXCEPTION_TYPE = 'Lambda.Timeout';
/** Time kept back from the guard's own export, so that its request is answered before Lambda stops the function. */
const EXPORT_MARGIN_MS = 10;

/** One invocation's guard, armed when the invocation begins and disarmed when it ends. */
export interface TimeoutGuard {
  /** True once the guard has ended the invocation's open spans (the handler ran into its last `marginMs`). */
  readonly fired: boolean;
  /** The invocation has ended before the guard fired: stops it. */
  disarm(): void;
  /**
   * The invocation has ended after the guard fired: exports the spans that ended since (ended once only: the
   * guard's are gone already) and waits for the guard's own export, at most `maxWaitMs`. The Lambda extension was
   * told by the guard already, so the invocation exports here in either mode.
   */
  endAfterFiring(maxWaitMs: number | undefined): Promise<void>;
}

/**
 * Arms the guard of an invocation `marginMs` before its deadline (half of what is left if less than twice the
 * margin remains). Undefined when the guard is off (margin 0) or the invocation has no deadline (no Lambda
 * context). The timer never keeps the process alive.
 */
export function armTimeoutGuard(telemetry: Telemetry, lambdaContext: LambdaContext | undefined, invocationId: string | undefined): TimeoutGuard | undefined {
  const marginMs = telemetry.config.timeoutGuardMs;
  if (marginMs <= 0 || telemetry.config.disabled) return undefined;
  const remainingMs = remainingTimeMs(lambdaContext);
  if (remainingMs === undefined || remainingMs <= 0) return undefined;
  return new InvocationTimeoutGuard(telemetry, invocationId, remainingMs, Math.min(marginMs, remainingMs / 2));
}

/**
 * One timer for the usual case, one invocation at a time with the same timeout: re-armed with `refresh()` as each
 * invocation begins (a few nanoseconds) instead of a timer made and cleared per invocation (~0.1 µs). Its delay is
 * the shortest it was made with, so it may wake a guard early (the guard then waits the rest), or with no guard to
 * wake (the invocation has ended: nothing to do).
 */
interface SharedTimer {
  timer: NodeJS.Timeout;
  delayMs: number;
  guard: InvocationTimeoutGuard | undefined;
}
let shared: SharedTimer | undefined;
/** How much earlier than needed the shared timer may wake a guard, rather than a timer of the guard's own. */
const SHARED_SLACK_MS = 1_000;
/** Guards on timers of their own: invocations running beside the one on the shared timer (several at once). */
const others = new Set<InvocationTimeoutGuard>();

/** The earliest deadline (epoch ms) of the invocations in flight, if any has one. */
export function earliestDeadline(): number | undefined {
  let earliest = shared?.guard?.deadline;
  for (const guard of others) if (earliest === undefined || guard.deadline < earliest) earliest = guard.deadline;
  return earliest;
}

class InvocationTimeoutGuard implements TimeoutGuard {
  fired = false;
  readonly deadline: number;
  /** When the guard fires (epoch ms). */
  private readonly dueAt: number;
  /** A timer of its own, when the shared one was busy, or to wait what the shared one woke it too early for. */
  private timer: NodeJS.Timeout | undefined;
  private exported: Promise<void> | undefined;

  constructor(
    private readonly telemetry: Telemetry,
    private readonly invocationId: string | undefined,
    private readonly remainingMs: number,
    marginMs: number,
  ) {
    const now = Date.now();
    const delayMs = remainingMs - marginMs;
    this.deadline = now + remainingMs;
    this.dueAt = now + delayMs;
    if (shared?.guard === undefined && shared && delayMs >= shared.delayMs && delayMs - shared.delayMs <= SHARED_SLACK_MS) {
      shared.guard = this;
      shared.timer.refresh();
    } else if (shared?.guard === undefined) {
      if (shared) clearTimeout(shared.timer);
      const slot: SharedTimer = { delayMs, guard: this, timer: setTimeout(() => slot.guard?.due(), delayMs).unref() };
      shared = slot;
    } else {
      others.add(this);
      this.timer = setTimeout(() => this.due(), delayMs).unref();
    }
  }

  disarm(): void {
    this.release();
  }

  endAfterFiring(maxWaitMs: number | undefined): Promise<void> {
    return Promise.all([this.telemetry.flush(maxWaitMs, this.invocationId), this.exported]).then(() => undefined);
  }

  /** The guard's time has come, or nearly (the shared timer may wake it early): fires, or waits the rest. */
  due(): void {
    const restMs = this.dueAt - Date.now();
    if (restMs > 1) this.timer = setTimeout(() => this.due(), restMs).unref();
    else this.fire();
  }

  /** Off every timer: the invocation has ended, or the guard has fired. */
  private release(): void {
    if (shared?.guard === this) shared.guard = undefined;
    if (this.timer) clearTimeout(this.timer);
    others.delete(this);
  }

  private fire(): void {
    this.fired = true;
    this.release();
    const invocationId = this.invocationId;
    const stillRunningMs = Math.max(0, Math.round(this.deadline - Date.now()));
    const timeout = describeTimeout(this.remainingMs);
    const message = `the function was still running ${stillRunningMs} ms before its deadline (timeout ${timeout}): Lambda stops it then, so its spans were ended here and exported`;
    let ended = 0;
    try {
      ended = this.telemetry.endRunningSpans(invocationId, (span, outermost) => markTimedOut(span, outermost, message));
    } catch (error) {
      diag.error('traced-lambda: the timeout guard could not end the open spans of this invocation', error);
    }
    diag.warn(`traced-lambda: invocation ${invocationId ?? '(no request id)'}: ${message} (${ended} span(s) still open; TRACED_LAMBDA_TIMEOUT_GUARD_MS).`);
    // Exported here in both modes, with what is left before the deadline; the extension (when it serves events) is
    // told the invocation is over only once that export is done, so that Lambda cannot freeze the sandbox before.
    const budgetMs = Math.max(0, this.deadline - Date.now() - EXPORT_MARGIN_MS);
    this.exported = this.telemetry.flush(budgetMs, invocationId).then(() => {
      this.telemetry.exports.exportedBy(invocationId);
    });
  }
}

/**
 * Marks a span that the guard ends: failed with `error.type=timeout`, and the outermost ones (the entry span, a
 * record's span) with an exception event saying what happened.
 */
function markTimedOut(span: Span, outermost: boolean, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'timed out' });
  span.setAttribute(ATTR_ERROR_TYPE, 'timeout');
  if (outermost) span.recordException({ name: TIMEOUT_EXCEPTION_TYPE, message });
}

/**
 * `2 s`: the timeout Lambda was configured with (whole seconds), as far as the time left at the start tells it;
 * below a second (only outside Lambda), to 10 ms.
 */
function describeTimeout(remainingAtStartMs: number): string {
  return remainingAtStartMs >= 1_000 ? `${Math.ceil(remainingAtStartMs / 1_000)} s` : `${Math.ceil(remainingAtStartMs / 10) * 10} ms`;
}

/** What is left of the invocation, as its Lambda context says (undefined when it cannot say). */
export function remainingTimeMs(lambdaContext: LambdaContext | undefined): number | undefined {
  try {
    const remaining = lambdaContext?.getRemainingTimeInMillis?.();
    return typeof remaining === 'number' && Number.isFinite(remaining) ? remaining : undefined;
  } catch {
    return undefined;
  }
}
