import { ROOT_CONTEXT, type Context, type Link } from '@opentelemetry/api';
import type { ParentLookup } from './parent-lookup';

/**
 * What a handler does with a trace context that arrives from outside:
 * - `continue` (default): the caller's span is the parent, one trace end to end;
 * - `link`: a new trace, linked to the caller's context (public entry points that should not let callers
 *   choose trace ids or sampling, yet keep the relation visible);
 * - `ignore`: a new trace, no relation kept.
 */
export type InboundPolicy = 'continue' | 'link' | 'ignore';

/** The context to start the entry span in, and the links to give it, under a policy. */
export function applyInboundPolicy(lookup: ParentLookup, policy: InboundPolicy = 'continue'): { context: Context; links: Link[] } {
  if (policy === 'continue' || !lookup.parent) return { context: lookup.context, links: [] };
  if (policy === 'link') return { context: ROOT_CONTEXT, links: [{ context: lookup.parent }] };
  return { context: ROOT_CONTEXT, links: [] };
}
