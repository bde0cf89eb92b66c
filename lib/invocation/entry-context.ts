// The contexts an invocation's code runs in: the invocation's id (which invocation owns the spans started there,
// INVOCATION_ID_KEY), its entry span current and kept under its own key, each value linked to its parent context
// instead of copying it.
import { createContextKey, trace, type Context, type Span } from '@opentelemetry/api';
import { INVOCATION_ID_KEY } from '../export/invocation-span-processor';

/** Where the invocation's entry span is kept, so that a forward call can attach to it instead of the current span. */
const ENTRY_SPAN_KEY = createContextKey('traced-lambda entry span');

/**
 * The context an invocation's entry span starts in: spans started in it, or in a context made from it, belong to
 * invocation `invocationId` (its Lambda request id), and are exported with it (InvocationSpanProcessor).
 */
export function invocationContext(parentContext: Context, invocationId: string): Context {
  return new ContextLink(parentContext, INVOCATION_ID_KEY, invocationId);
}

/** The context for code running inside an invocation: `span` is current and is the entry span. */
export function entryContext(parentContext: Context, span: Span): Context {
  return trace.setSpan(new ContextLink(parentContext, ENTRY_SPAN_KEY, span), span);
}

/** Links kept in a chain before it is copied into one flat context (lookups walk the chain). */
const MAX_CHAIN = 8;

/**
 * A context that is its parent plus one value, without copying the parent: the API's own contexts copy every
 * value into a new Map at each `setValue` (~0.4 µs; an invocation makes three per span: the parent's span, the
 * entry span, the current span). Values set on it link further; past MAX_CHAIN links the chain is copied into one
 * flat context of the parent's kind, so that a lookup never walks far. It behaves as any `Context`: immutable,
 * the nearest value for a key wins, a deleted key reads as undefined.
 */
class ContextLink implements Context {
  private readonly depth: number;

  constructor(
    private readonly parent: Context,
    private readonly key: symbol,
    private readonly value: unknown,
  ) {
    this.depth = parent instanceof ContextLink ? parent.depth + 1 : 1;
  }

  getValue(key: symbol): unknown {
    let node: Context = this;
    while (node instanceof ContextLink) {
      if (node.key === key) return node.value;
      node = node.parent;
    }
    return node.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return this.depth < MAX_CHAIN ? new ContextLink(this, key, value) : this.flatten().setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return this.depth < MAX_CHAIN ? new ContextLink(this, key, undefined) : this.flatten().deleteValue(key);
  }

  /** The same values in the context the chain starts from (an API context): nearest value per key, as read. */
  private flatten(): Context {
    const links: ContextLink[] = [];
    let node: Context = this;
    while (node instanceof ContextLink) {
      links.push(node);
      node = node.parent;
    }
    // Replayed oldest first, so that the nearest value is set last.
    for (let index = links.length - 1; index >= 0; index--) {
      const link = links[index];
      node = link.value === undefined ? node.deleteValue(link.key) : node.setValue(link.key, link.value);
    }
    return node;
  }
}

/** The entry span of the invocation `ctx` belongs to (the SERVER/CONSUMER span a wrapper started). */
export function getEntrySpan(ctx: Context): Span | undefined {
  return ctx.getValue(ENTRY_SPAN_KEY) as Span | undefined;
}
