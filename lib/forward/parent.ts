import { context, trace, type Context } from '@opentelemetry/api';
import { getEntrySpan } from '../invocation';

export interface ForwardOptions {
  /**
   * Which span the forwarded call hangs under: `current` (default), the innermost active span; or `entry`,
   * the invocation's entry span (the SERVER/CONSUMER span the wrapper started), so that the next function
   * attaches to the invocation rather than to whatever child span happens to be current.
   */
  parent?: 'current' | 'entry';
}

/** The context a forward call starts its span in. */
export function forwardParentContext(options: ForwardOptions = {}): Context {
  const active = context.active();
  if (options.parent !== 'entry') return active;
  const entry = getEntrySpan(active);
  return entry ? trace.setSpan(active, entry) : active;
}
