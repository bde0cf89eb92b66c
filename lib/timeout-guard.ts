// The timeout guard: shortly before an invocation's deadline, its spans still open are ended as timed out and
// exported. Lambda stops a function at its deadline (the environment is reset, with no signal the kit can count
// on), so an invocation that runs out of time would otherwise never end its entry span and leave no trace at all.
import { diag, SpanStatusCode, type Span } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { handOffToExtension, requestIdOf } from './after-response';
import { ATTR_ERROR_TYPE } from './semconv';
import type { Telemetry } from './telemetry';

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
export function armTimeoutGuard(telemetry: Telemetry, lambdaContext: LambdaContext | undefined): TimeoutGuard | undefined {
  const marginMs = telemetry.config.timeoutGuardMs;
  if (marginMs <= 0 || telemetry.config.disabled) return undefined;
  const remainingMs = remainingTimeMs(lambdaContext);
  if (remainingMs === undefined) return undefined;
  return new InvocationTimeoutGuard(telemetry, lambdaContext!, remainingMs, Math.min(marginMs, remainingMs / 2));
}

/** Guards armed and not yet fired or ended: the invocations in flight, one at a time unless Lambda runs several. */
const armed = new Set<InvocationTimeoutGuard>();

/** The earliest deadline (epoch ms) of the invocations in flight, if any has one. */
export function earliestDeadline(): number | undefined {
  let earliest: number | undefined;
  for (const guard of armed) if (earliest === undefined || guard.deadline < earliest) earliest = guard.deadline;
  return earliest;
}

class InvocationTimeoutGuard implements TimeoutGuard {
  fired = false;
  private readonly timer: NodeJS.Timeout;
  readonly deadline: number;
  private exported: Promise<void> | undefined;

  constructor(
    private readonly telemetry: Telemetry,
    private readonly lambdaContext: LambdaContext,
    private readonly remainingMs: number,
    marginMs: number,
  ) {
    this.deadline = Date.now() + remainingMs;
    this.timer = setTimeout(() => this.fire(), remainingMs - marginMs).unref();
    armed.add(this);
  }

  disarm(): void {
    clearTimeout(this.timer);
    armed.delete(this);
  }

  endAfterFiring(maxWaitMs: number | undefined): Promise<void> {
    const invocationId = requestIdOf(this.lambdaContext);
    return Promise.all([this.telemetry.flush(maxWaitMs, invocationId), this.exported]).then(() => undefined);
  }

  private fire(): void {
    this.fired = true;
    armed.delete(this);
    const invocationId = requestIdOf(this.lambdaContext);
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
      handOffToExtension(this.lambdaContext);
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

function remainingTimeMs(lambdaContext: LambdaContext | undefined): number | undefined {
  try {
    const remaining = lambdaContext?.getRemainingTimeInMillis?.();
    return typeof remaining === 'number' && Number.isFinite(remaining) && remaining > 0 ? remaining : undefined;
  } catch {
    return undefined;
  }
}
