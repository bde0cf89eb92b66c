import { randomBytes } from 'node:crypto';
import type { PackagedFunction } from './lambda-runtime';

/** One invocation sent under a trace of its own: what its spans must say. */
export interface SentInvocation {
  /** Its place in the order the invocations were handed out. */
  index: number;
  requestId: string;
  traceId: string;
  /** The caller's span: the parent the function's entry span must have. */
  parentSpanId: string;
  responseMs: number;
}

/**
 * Invokes `fn` `count` times, `inFlight` at a time (as many as a Managed Instances environment takes), each with a
 * traceparent of its own built into the event by `eventFor`. `accept` checks each answer; a rejected answer (a
 * response that reached another invocation, an error) throws with the function's logs.
 */
export async function invokeInterleaved<Event>(
  fn: PackagedFunction,
  options: {
    count: number;
    inFlight: number;
    eventFor(traceparent: string, index: number): Event;
    accept(payload: unknown, index: number): boolean;
  },
): Promise<SentInvocation[]> {
  const sent: SentInvocation[] = [];
  let next = 0;
  const caller = async () => {
    while (next < options.count) {
      const index = next++;
      const traceId = randomBytes(16).toString('hex');
      const parentSpanId = randomBytes(8).toString('hex');
      const result = await fn.invoke(options.eventFor(`00-${traceId}-${parentSpanId}-01`, index));
      if (!result.ok || !options.accept(result.payload, index)) throw new Error(`invocation ${index}: ${JSON.stringify(result)}\n${fn.logs()}`);
      sent.push({ index, requestId: result.requestId, traceId, parentSpanId, responseMs: result.responseMs! });
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, caller));
  return sent;
}
