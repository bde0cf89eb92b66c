// A crash that ends the process: an uncaught exception, or an unhandled rejection, which Node.js raises as one.
// Under the Lambda runtime nothing catches either, so Node.js prints the error and exits (Lambda reports
// Runtime.ExitError), and every span of the invocations in flight would go with the process. Here the kit ends
// those spans in error with the crash's exception and exports them first, then lets the error end the process
// exactly as it would have. The export hands the event loop no turn: signed in promise callbacks, the requests are
// sent from a worker thread while this thread waits (exit-export.ts). Given a turn, the runtime client would go on
// (post a handler's answer, ask for its next event), and once it waits on that event no exit of the process ends
// before the event comes: its native client waits in libuv's thread pool, which Node.js joins as it exits.
// `process.exit()` gives only a synchronous moment (the `exit` event): the spans still pending are sent then the
// same way, where no signing is needed.
import { diag, SpanStatusCode, type Span } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE } from '../semconv';
import { recordFailure } from '../invocation/span-outcome';
import { earliestDeadline } from '../invocation/timeout-guard';

/** What the crash export needs of the process-wide telemetry. */
export interface CrashExportTarget {
  endRunningSpans(invocationId: string | undefined, mark: (span: Span, outermost: boolean) => void): number;
  /**
   * Sends every ended span, and every export posted but not on its way yet, while this thread waits at most
   * `maxWaitMs`; settles without handing the event loop a turn (signing runs in promise callbacks only): what
   * was sent, or why nothing was. The runtime client must not ask for its next event meanwhile: once it waits on
   * it, no exit of the process ends before that event comes (libuv joins its thread pool, where the request waits).
   */
  exportBeforeCrash(maxWaitMs: number): Promise<{ sent: number; of: number } | string>;
  /** Sends every ended span while this thread waits (the process is exiting): what was sent, or why nothing was. */
  exportBeforeExit(maxWaitMs: number): { sent: number; of: number } | string;
  /** Upper bound for the export (the configured flush timeout). */
  readonly flushTimeoutMs: number;
}

/**
 * Time kept back from the earliest deadline of the invocations in flight: exporting past it would turn the
 * invocation's Runtime.ExitError into a timeout.
 */
const DEADLINE_MARGIN_MS = 20;
/** What Node.js names as the place an uncaught exception was thrown from, once its spans are exported. */
const RETHROWN_FROM = 'traced-lambda: the uncaught exception below, thrown again once its spans were exported';

let target: CrashExportTarget | undefined;
/** Until a crash, when the listener takes itself off to let the error end the process. */
let listening = false;
/** From a crash until it is raised again. */
let crashing = false;
let exitListening = false;

/** Exports through `next` from now on when the process crashes or exits (installed once per process). */
export function exportOnCrash(next: CrashExportTarget): void {
  target = next;
  if (!listening) process.on('uncaughtException', exportBeforeCrash);
  if (!exitListening) process.on('exit', exportAtExit);
  listening = exitListening = true;
}

/**
 * `process.exit()` (the function's code), or the end of a crash: Node.js runs nothing asynchronous after the
 * `exit` event, so what is still pending is sent while this thread waits (exit-export.ts).
 */
function exportAtExit(code: number): void {
  const exiting = target;
  if (!exiting) return;
  try {
    const ended = exiting.endRunningSpans(undefined, (span, outermost) => markExited(span, outermost, code));
    const outcome = exiting.exportBeforeExit(budgetMs(exiting));
    if (typeof outcome === 'string') {
      diag.warn(`traced-lambda: the process is exiting (code ${code}) and its pending spans cannot be exported: ${outcome}.`);
    } else if (outcome.sent < outcome.of) {
      diag.warn(`traced-lambda: the process is exiting (code ${code}); ${outcome.of - outcome.sent} of ${outcome.of} span(s) could not be exported in time.`);
    } else if (ended > 0) {
      diag.warn(`traced-lambda: the process is exiting (code ${code}); ${ended} span(s) still open were ended in error and exported first.`);
    }
  } catch (problem) {
    diag.error('traced-lambda: could not export the pending spans before the process exited', problem);
  }
}

/** What the last export may take: the flush timeout, and never past the earliest deadline of the invocations in flight. */
function budgetMs(exporting: CrashExportTarget): number {
  const deadline = earliestDeadline();
  return Math.max(0, Math.min(exporting.flushTimeoutMs, deadline === undefined ? Infinity : deadline - Date.now() - DEADLINE_MARGIN_MS));
}

function markExited(span: Span, outermost: boolean, code: number): void {
  const message = `the process exited (code ${code}) while this span was running`;
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.setAttribute(ATTR_ERROR_TYPE, 'ProcessExit');
  if (outermost) span.recordException({ name: 'ProcessExit', message: `process.exit(${code}) was called while the invocation was running` });
}

function exportBeforeCrash(error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void {
  // A second error while the first is being exported: without the kit the process had ended at the first.
  if (crashing) return;
  // Another listener handles uncaught exceptions: the process goes on, and so do its invocations.
  if (process.listenerCount('uncaughtException') > 1) return;
  crashing = true;
  const crashed = target;
  let ended = 0;
  try {
    const what = origin === 'unhandledRejection' ? 'an unhandled promise rejection' : 'an uncaught exception';
    ended = crashed?.endRunningSpans(undefined, (span, outermost) => markCrashed(span, outermost, error, what)) ?? 0;
  } catch (problem) {
    diag.error('traced-lambda: could not end the open spans before the process crashed', problem);
  }
  if (ended > 0) diag.warn(`traced-lambda: the process is crashing (${origin}); ${ended} span(s) still open were ended in error and are exported first.`);
  let raised = false;
  const raise = () => {
    if (raised) return;
    raised = true;
    process.removeListener('uncaughtException', exportBeforeCrash);
    listening = false;
    crashing = false;
    raiseAgain(error, origin);
  };
  // The export never hands the event loop a turn (see CrashExportTarget.exportBeforeCrash); should it ever wait for
  // one, the crash goes on without it rather than wait with the runtime.
  setImmediate(raise);
  let exported: Promise<void>;
  try {
    if (crashed) {
      const budget = budgetMs(crashed);
      exported = crashed.exportBeforeCrash(budget).then((outcome) => reportCrashExport(origin, outcome, budget));
    } else exported = Promise.resolve();
  } catch (problem) {
    exported = Promise.reject(problem);
  }
  void exported.catch((problem: unknown) => diag.error('traced-lambda: could not export the pending spans before the process crashed', problem)).then(raise);
}

/**
 * Raises the crash again with no listener left, so that Node.js ends the process as it would have without the kit
 * (status 1). A rejection is rejected again: Node.js prints it as it prints any. An exception is thrown again from a
 * line of its own, which Node.js prints above the error's stack instead of the line of the kit's minified bundle
 * the throw would otherwise be in (tens of kilobytes in the function's log).
 */
function raiseAgain(error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void {
  if (origin === 'unhandledRejection') {
    void Promise.reject(error);
    return;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runInThisContext } = require('node:vm') as typeof import('node:vm');
  const rethrow = runInThisContext('(error) => { throw error; }', { filename: RETHROWN_FROM }) as (thrown: unknown) => never;
  process.nextTick(rethrow, error);
}

function reportCrashExport(origin: NodeJS.UncaughtExceptionOrigin, outcome: { sent: number; of: number } | string, budgetMs: number): void {
  if (typeof outcome === 'string') diag.warn(`traced-lambda: the process is crashing (${origin}) and its pending spans cannot be exported: ${outcome}.`);
  else if (outcome.sent < outcome.of) {
    diag.warn(
      `traced-lambda: the process is crashing (${origin}); ${outcome.of - outcome.sent} of ${outcome.of} span(s) could not be exported: the endpoint did not accept them within ${Math.round(budgetMs)} ms.`,
    );
  }
}

/** The outermost spans get the crash's exception (type, message, stack); the others are marked failed by it. */
function markCrashed(span: Span, outermost: boolean, error: unknown, what: string): void {
  if (outermost) recordFailure(span, error);
  else span.setStatus({ code: SpanStatusCode.ERROR, message: `the process crashed with ${what}` });
}
