/**
 * Export after the response: the kit's side of the internal Lambda extension that extension/after-response.mjs
 * registers before the runtime starts. While it is registered, a wrapper does not wait for the export when its
 * handler returns: it tells the extension the invocation is over, the runtime posts the response, and the
 * extension exports the invocation's spans (bounded by the invocation's deadline) before asking Lambda for its
 * next event, which is what lets Lambda freeze the sandbox. Without the extension (serverless offline,
 * `invoke local`, tests, a failed registration) the wrapper exports before returning, as it always did.
 */
import { diag } from '@opentelemetry/api';

/** The registry symbol extension/after-response.mjs publishes its state under. */
const LINK = Symbol.for('traced-lambda.after-response');

/** What the Extensions API sends for an invocation (the fields the kit reads). */
export interface InvokeEvent {
  eventType: 'INVOKE';
  requestId: string;
  deadlineMs: number;
}

/** The extension's state, as extension/after-response.mjs publishes it. */
export interface AfterResponseLink {
  status: 'registering' | 'registered' | 'off' | 'failed' | 'stopped';
  reason: string;
  /** While registering: resolves once Lambda has answered (and the first event has been asked for, if accepted). */
  settled?: Promise<void>;
  name: string;
  onInvoke?: (event: InvokeEvent) => Promise<void>;
  onStopped?: () => void;
  /** Asked as each event request goes out: true leaves the event unread until `readEvent()` (see the preload). */
  holdEvent?: () => boolean;
  readEvent?: () => void;
  /** Set by the preload while an INVOKE event waits for the kit to connect: the kit calls it once it has. */
  connected?: () => void;
}

export type ExportMode = 'after-response' | 'in-invocation' | 'background';

/** The extension's state in this process, when the preload ran. */
export function afterResponseLink(): AfterResponseLink | undefined {
  return (globalThis as Record<symbol, unknown>)[LINK] as AfterResponseLink | undefined;
}

/** Time kept back from the invocation's deadline, so that the export never times the function out. */
export const DEADLINE_MARGIN_MS = 50;
/**
 * How long an INVOKE event waits for a traced wrapper to start its invocation before it is taken for an
 * untraced handler (a function that does not use the kit's wrappers): its pending spans are then exported
 * and the extension moves on, instead of holding the sandbox until the deadline.
 */
export const UNTRACED_GRACE_MS = 1_000;

/** Exports one invocation's spans (and those of no invocation), or every span when no id is given. */
type Flush = (maxWaitMs: number, invocationId?: string) => Promise<void>;

/** When the spans of an ended invocation are exported (ExportScheduler): now, or held for a shared export. */
export interface ExportSchedule {
  exportsNow(invocationId: string): boolean;
  hold(invocationId: string): void;
}

/** Without a schedule, each invocation exports its own spans. */
const EVERY_INVOCATION: ExportSchedule = { exportsNow: () => true, hold: () => undefined };

interface Tracked {
  started: boolean;
  ended: boolean;
  /** Decided when it ended: its spans are exported after the response (true) or held for a shared export. */
  exportsNow: boolean;
  /** Called when the invocation starts or ends, for an INVOKE event waiting on it. */
  wake?: () => void;
}

/** Invocations followed at most (ended ones whose INVOKE event never comes are dropped oldest first). */
const MAX_TRACKED = 1_000;

/**
 * Follows the invocations of one process so that the extension exports each one's spans once it has ended.
 * Invocations are keyed by request id, so several may run at once (one process serving concurrent requests).
 */
export class AfterResponseExport {
  private readonly invocations = new Map<string, Tracked>();
  private untracedWarned = false;

  constructor(
    private readonly link: AfterResponseLink,
    private readonly flush: Flush,
    private readonly graceMs = UNTRACED_GRACE_MS,
    private readonly schedule: ExportSchedule = EVERY_INVOCATION,
  ) {}

  /** True while the extension serves events; false once it stopped (the wrappers then export in-invocation). */
  get active(): boolean {
    return servesEvents(this.link);
  }

  /** A wrapper entered its handler for this request. */
  started(requestId: string): void {
    // The handler runs through the kit's wrappers, which say when each invocation ends: from now on the extension
    // leaves each INVOKE event unread until then, so that reading it never comes before the response.
    if (this.link.holdEvent !== this.holdEvent) this.link.holdEvent = this.holdEvent;
    const tracked = this.track(requestId);
    tracked.started = true;
    tracked.wake?.();
  }

  /** Answers the preload's question as each event request goes out (see AfterResponseLink.holdEvent). */
  private readonly holdEvent = () => this.noEndedInvocationWaits();

  /** This set-up no longer serves the extension (replaced): the link forgets its hooks. */
  detach(): void {
    if (this.link.holdEvent === this.holdEvent) this.link.holdEvent = undefined;
  }

  /** The handler's result (or error) is known: the extension may export once the runtime has posted it. */
  ended(requestId: string): void {
    const tracked = this.track(requestId);
    tracked.started = true;
    tracked.ended = true;
    tracked.exportsNow = this.schedule.exportsNow(requestId);
    tracked.wake?.();
    // Both wait until the runtime has posted the response. An export then waits a quiet moment more; holding the
    // spans (reading the event, asking for the next) is lighter work, done at once, in the same wake-up of the process.
    // A timer alone from the end is not enough: on a cold start the post can come long after it, and the first
    // export's work (loading the exporter's file, serializing) ran before the post and delayed the first response.
    afterThePost(tracked.exportsNow ? () => setTimeout(this.readEvent, QUIET_AFTER_RESPONSE_MS) : this.readEvent);
  }

  private readonly readEvent = () => this.link.readEvent?.();

  /** The extension's hook: waits for the invocation to end, then exports, within the invocation's deadline. */
  async onInvoke(event: InvokeEvent): Promise<void> {
    const deadline = Number.isFinite(event.deadlineMs) ? event.deadlineMs - DEADLINE_MARGIN_MS : Date.now() + this.graceMs;
    const requestId = String(event.requestId);
    const tracked = this.track(requestId);
    // Read after the invocation ended (the usual case once the wrappers run: see holdEvent), the response is out.
    if (tracked.ended) {
      this.invocations.delete(requestId);
      if (!tracked.exportsNow) return this.schedule.hold(requestId);
      return this.flush(Math.max(0, deadline - Date.now()), requestId).catch(() => undefined);
    }
    try {
      if (!(await this.wait(tracked, Math.min(deadline, Date.now() + this.graceMs), () => tracked.started))) {
        // No wrapper started it: an untraced handler. Export whatever ended and let Lambda go on.
        this.warnUntraced(requestId);
      } else {
        await this.wait(tracked, deadline, () => tracked.ended);
        if (tracked.ended && !tracked.exportsNow) {
          await new Promise<void>((resolve) => afterThePost(resolve));
          this.schedule.hold(requestId);
          return;
        }
        await afterTheResponse();
      }
    } finally {
      this.invocations.delete(requestId);
    }
    await this.flush(Math.max(0, deadline - Date.now()), requestId).catch(() => undefined);
  }

  /** True unless an invocation has ended and its event is still to be read (then it must be read at once). */
  private noEndedInvocationWaits(): boolean {
    for (const tracked of this.invocations.values()) if (tracked.ended) return false;
    return true;
  }

  private track(requestId: string): Tracked {
    let tracked = this.invocations.get(requestId);
    if (!tracked) {
      if (this.invocations.size >= MAX_TRACKED) this.invocations.delete(this.invocations.keys().next().value!);
      tracked = { started: false, ended: false, exportsNow: true };
      this.invocations.set(requestId, tracked);
    }
    return tracked;
  }

  private warnUntraced(requestId: string): void {
    if (this.untracedWarned) return;
    this.untracedWarned = true;
    diag.warn(
      `traced-lambda: invocation ${requestId} did not run through a traced-lambda wrapper within ${this.graceMs} ms; ` +
        'export the wrapped handler (traceHttpHandler, traceSqsRecords, …) as the function handler.',
    );
  }

  /** Resolves true as soon as `done()` holds (checked when the invocation wakes it), false at `until`. */
  private wait(tracked: Tracked, until: number, done: () => boolean): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => finish(false), Math.max(0, until - Date.now()));
      const finish = (result: boolean) => {
        clearTimeout(timer);
        tracked.wake = undefined;
        resolve(result);
      };
      tracked.wake = () => {
        if (done()) finish(true);
      };
    });
  }
}

/**
 * How long after an invocation ends its post-response work (reading the extension's event, exporting) waits.
 * The runtime interface client posts the response one setImmediate turn after the handler's promise settles
 * (LifecycleManager.succeed and .fail), so any later turn is after it in this thread; but the Runtime API
 * (Lambda's, on the sandbox's own vCPUs) still has to take the response in and pass it on, and work started at
 * once competes with it: measured under the runtime interface client (bench), starting at the next turn added
 * 0.4–0.55 ms to every response, after 1 ms 0.13 ms, after 2 ms 0.03–0.05 ms. The cost is 2 ms more before the
 * sandbox may freeze, on top of the export's own round trip. It counts from the post (afterThePost), not from the
 * end: when the handler's last step resumed from an immediate, the post waits for the loop's next round of
 * immediates, after its timers, and on a cold start the code on the way to it runs for the first time.
 */
const QUIET_AFTER_RESPONSE_MS = 2;

function afterTheResponse(): Promise<void> {
  return new Promise<void>((resolve) => afterThePost(() => setTimeout(resolve, QUIET_AFTER_RESPONSE_MS)));
}

/**
 * Runs `then` right after the runtime interface client has posted the response of the invocation that just ended
 * (called as it ends, before its handler's promise settles): the client posts it from a setImmediate callback queued
 * when that promise settles (LifecycleManager.succeed and .fail), with its native client, which returns only once
 * the Runtime API has taken the response. A tick queued now runs once the microtasks have run, the client's
 * continuation that queues its immediate included; an immediate queued from it comes after the client's, in the same
 * check phase: right after the post, without another turn of the event loop. Held spans need no more than that:
 * the event read, the next one asked for, with no timer, so the process does all of it in the wake-up it posted the
 * response in. Measured under the runtime client (bench, alternating rounds, dense traffic): against a 1 ms timer,
 * the CPU per invocation added over a bare handler went from 450 to 240 µs (Powertools 260 in the same run), the
 * response p50 from 0.50 to 0.33 ms, and the sandbox was free 0.20 ms after the response instead of 1.3 ms (p50).
 * Against an immediate queued from an immediate (one more turn of the loop, after the client's): 741 → 668 µs per
 * invocation (median of 40 interleaved blocks of 100, schedstat CPU of every thread; Powertools 783, bare 414).
 */
function afterThePost(then: () => void): void {
  process.nextTick(() => setImmediate(then));
}

/** What a telemetry set-up gives the extension: its flush, its export schedule, and a drain for shutdown. */
export interface AfterResponseTarget {
  flush: Flush;
  schedule: ExportSchedule;
  /** Exports what is pending and waits for exports in flight, at most `maxWaitMs`. */
  drain(maxWaitMs: number): Promise<void>;
}

/** Lambda kills the process 500 ms after SIGTERM when an internal extension is registered. */
const SHUTDOWN_BUDGET_MS = 400;

/** The extension's side in this process while a telemetry set-up serves it. */
export interface AfterResponseConnection {
  readonly afterResponse: AfterResponseExport;
  /** The set-up is replaced: its hooks come off the link and its SIGTERM listener goes. */
  disconnect(): void;
}

/**
 * Connects a telemetry set-up to the extension, when the preload registered one: from now on its INVOKE events
 * wait for this set-up's invocations and export through it, and SIGTERM exports what is left before the process
 * ends. The set-up starts with the first traced invocation, which may come after that invocation's event: the
 * preload holds such an event (for a bounded time) until `link.connected` is called.
 */
export function connectAfterResponse(link: AfterResponseLink | undefined, target: AfterResponseTarget): AfterResponseConnection | undefined {
  if (!link || !servesEvents(link)) return undefined;
  const afterResponse = new AfterResponseExport(link, target.flush, UNTRACED_GRACE_MS, target.schedule);
  const onInvoke = (event: InvokeEvent) => afterResponse.onInvoke(event);
  link.onInvoke = onInvoke;
  link.onStopped = () => {
    diag.warn(`traced-lambda: spans are exported before each response returns from now on (${link.reason}).`);
    // Spans an ended invocation left for the extension (no event will come for them now) go out at once, within
    // the configured flush timeout.
    void target.flush(Number.POSITIVE_INFINITY).catch(() => undefined);
  };
  link.connected?.();
  // With an extension registered, Lambda ends the sandbox with SIGTERM and ~500 ms: export what is left (spans
  // ended outside an invocation, an export still in flight), then end as Node.js would have without this
  // listener, by the signal itself. (process.exit would wait for the runtime's thread blocked on its /next.)
  const exportBeforeExit = () => {
    void target
      .drain(SHUTDOWN_BUDGET_MS)
      .catch(() => undefined)
      .then(() => {
        process.removeListener('SIGTERM', exportBeforeExit);
        if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
      });
  };
  process.on('SIGTERM', exportBeforeExit);
  return {
    afterResponse,
    disconnect: () => {
      process.removeListener('SIGTERM', exportBeforeExit);
      afterResponse.detach();
      if (link.onInvoke === onInvoke) link.onInvoke = undefined;
    },
  };
}

/**
 * Whether the extension serves events: registered, or registering (the preload sends the registration before the
 * runtime starts and does not wait for Lambda's answer; should Lambda refuse it, the link stops and `onStopped` says so).
 */
function servesEvents(link: AfterResponseLink): boolean {
  return link.status === 'registered' || link.status === 'registering';
}

/** Says in the function's log where spans are exported, and why when it is not after the response. */
export function describeExportMode(link: AfterResponseLink | undefined, mode: ExportMode, hasRuntimeApi: boolean): void {
  if (mode === 'background') {
    diag.info('traced-lambda: spans are exported in the background, never inside an invocation (Lambda Managed Instances).');
  } else if (mode === 'after-response') {
    diag.info(`traced-lambda: spans are exported after each response (internal Lambda extension ${link?.name}).`);
  } else if (!link) {
    if (hasRuntimeApi) {
      diag.info(
        'traced-lambda: spans are exported before each response returns (extension/after-response.mjs is not loaded: NODE_OPTIONS has no --import of it).',
      );
    }
  } else if (link.status === 'failed' || link.status === 'stopped') {
    diag.warn(`traced-lambda: spans are exported before each response returns (${link.reason}).`);
  } else {
    diag.info(`traced-lambda: spans are exported before each response returns (${link.reason}).`);
  }
}
