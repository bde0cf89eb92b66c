import type { TraceState } from '@opentelemetry/api';

/**
 * W3C Trace Context `tracestate`, read as the current specification writes it (the SDK's parser follows an older
 * key grammar and drops keys such as `foo@` or `t…t@v` that are valid today):
 * - key = a lower-case letter or digit, then up to 255 of `a-z 0-9 _ - * / @`;
 * - value = up to 256 printable ASCII characters but `,` and `=`, the last one not a space;
 * - at most 32 list members; empty members and space/tab around members are allowed;
 * - a duplicated key keeps its first value (the spec allows keeping one of them).
 * A header that breaks a rule is invalid as a whole: the parent is kept and the tracestate dropped.
 */
const KEY = /^[a-z0-9][a-z0-9_\-*/@]{0,255}$/;
// chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E; the last character is not blank.
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const MAX_MEMBERS = 32;

/** The members of a valid header in order (a duplicated key once, at its first place); undefined if invalid. */
function parseMembers(header: string): Map<string, string> | undefined {
  const members = new Map<string, string>();
  let count = 0;
  for (const raw of header.split(',')) {
    const member = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (member === '') continue;
    const at = member.indexOf('=');
    if (at <= 0) return undefined;
    const key = member.slice(0, at);
    const value = member.slice(at + 1);
    if (!KEY.test(key) || !VALUE.test(value) || ++count > MAX_MEMBERS) return undefined;
    if (!members.has(key)) members.set(key, value);
  }
  return members;
}

export function isValidTraceState(header: string): boolean {
  return parseMembers(header) !== undefined;
}

/** The tracestate of a header, or undefined when the header is not a valid one. */
export function parseTraceState(header: string): TraceState | undefined {
  const members = parseMembers(header);
  return members ? new W3CTraceState(members) : undefined;
}

/** The API's TraceState over the members as read: updated keys move to the front, as the spec asks. */
class W3CTraceState implements TraceState {
  constructor(private readonly members: ReadonlyMap<string, string>) {}

  get(key: string): string | undefined {
    return this.members.get(key);
  }

  set(key: string, value: string): TraceState {
    if (!KEY.test(key) || !VALUE.test(value)) return this;
    const members = new Map([[key, value]]);
    for (const [other, otherValue] of this.members) {
      if (other !== key && members.size < MAX_MEMBERS) members.set(other, otherValue);
    }
    return new W3CTraceState(members);
  }

  unset(key: string): TraceState {
    if (!this.members.has(key)) return this;
    const members = new Map(this.members);
    members.delete(key);
    return new W3CTraceState(members);
  }

  serialize(): string {
    return Array.from(this.members, ([key, value]) => `${key}=${value}`).join(',');
  }
}
