// A crash that ends the process: an uncaught exception, or an unhandled rejection, which Node.js raises as one.
// Under the Lambda runtime nothing catches either, so Node.js prints the error and exits (Lambda reports
// Runtime.ExitError), and every span of the invocations in flight would go with the process. Here the kit ends
// those spans in error with the crash's exception and exports them first, then lets the error end the process
// exactly as it would have.
import { diag, SpanStatusCode, type Span } from '@opentelemetry/api';
import { recordFailure } from './span-outcome';
import { earliestDeadline } from './timeout-guard';

/** What the crash export needs of the process-wide telemetry. */
export interface CrashExportTarget {
  endRunningSpans(invocationId: string | undefined, mark: (span: Span, outermost: boolean) => void): number;
  /** Exports every pending span and waits for exports in flight, at most `maxWaitMs`. */
  drain(maxWaitMs: number): Promise<void>;
  /** Upper bound for the export (the configured flush timeout). */
  readonly flushTimeoutMs: number;
}

/**
 * Time kept back from the earliest deadline of the invocations in flight: exporting past it would turn the
 * invocation's Runtime.ExitError into a timeout.
 */
const DEADLINE_MARGIN_MS = 20;

let target: CrashExportTarget | undefined;
let installed = false;

/** Exports through `next` from now on when the process crashes (installed once per process). */
export function exportOnCrash(next: CrashExportTarget): void {
  target = next;
  if (installed) return;
  installed = true;
  process.on('uncaughtException', exportBeforeCrash);
}

function exportBeforeCrash(error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void {
  // Another listener handles uncaught exceptions: the process goes on, and so do its invocations.
  if (process.listenerCount('uncaughtException') > 1) return;
  process.removeListener('uncaughtException', exportBeforeCrash);
  installed = false;
  const crashed = target;
  let ended = 0;
  try {
    const what = origin === 'unhandledRejection' ? 'an unhandled promise rejection' : 'an uncaught exception';
    ended = crashed?.endRunningSpans(undefined, (span, outermost) => markCrashed(span, outermost, error, what)) ?? 0;
  } catch (problem) {
    diag.error('traced-lambda: could not end the open spans before the process crashed', problem);
  }
  const deadline = earliestDeadline();
  const budgetMs = Math.max(0, Math.min(crashed?.flushTimeoutMs ?? 0, deadline === undefined ? Infinity : deadline - Date.now() - DEADLINE_MARGIN_MS));
  if (ended > 0) diag.warn(`traced-lambda: the process is crashing (${origin}); ${ended} span(s) still open were ended in error and are exported first.`);
  const exported = crashed ? crashed.drain(budgetMs).catch(() => undefined) : Promise.resolve();
  // Thrown again from a callback of its own, with no listener left: Node.js prints it and exits with the same code
  // (1) as it would have without this listener.
  void exported.then(() =>
    setImmediate(() => {
      throw error;
    }),
  );
}

/** The outermost spans get the crash's exception (type, message, stack); the others are marked failed by it. */
function markCrashed(span: Span, outermost: boolean, error: unknown, what: string): void {
  if (outermost) recordFailure(span, error);
  else span.setStatus({ code: SpanStatusCode.ERROR, message: `the process crashed with ${what}` });
}
