// Shutdown on Lambda Managed Instances: the runtime client runs the handler in worker threads, and a signal reaches
// only the main thread, where extension/after-response.mjs listens for SIGTERM. It asks every worker over this
// channel to export what it holds, waits for their answers (within Lambda's shutdown time), then lets the signal
// end the process. Both sides speak these messages; the names are the protocol.
import type { BroadcastChannel as Channel } from 'node:worker_threads';

/** The channel's name, the same in extension/after-response.mjs. */
export const SHUTDOWN_CHANNEL = 'traced-lambda.shutdown';

/** `ready`: a worker holds spans from now on; `drain`: export everything within `budgetMs`; `drained`: done. */
export type ShutdownMessage = { type: 'ready' } | { type: 'drain'; budgetMs: number } | { type: 'drained' };

/**
 * This thread's held spans are exported by `drain` when the environment shuts down, until `close` is called (the
 * telemetry set-up that holds them is replaced).
 */
export function drainOnShutdown(drain: (maxWaitMs: number) => Promise<void>): { close(): void } {
  // Loaded here, not at import: only Managed Instances' workers listen, and node:worker_threads costs a cold start ~1 ms.
  const { BroadcastChannel } = process.getBuiltinModule('node:worker_threads') as { BroadcastChannel: typeof Channel };
  const listening = new BroadcastChannel(SHUTDOWN_CHANNEL);
  // Never what keeps a worker alive.
  listening.unref();
  listening.onmessage = (event) => {
    const message = (event as { data?: ShutdownMessage }).data;
    if (message?.type !== 'drain') return;
    void drain(message.budgetMs)
      .catch(() => undefined)
      .then(() => listening.postMessage({ type: 'drained' } satisfies ShutdownMessage));
  };
  listening.postMessage({ type: 'ready' } satisfies ShutdownMessage);
  return { close: () => listening.close() };
}
