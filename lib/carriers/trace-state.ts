/**
 * W3C Trace Context `tracestate` rules the stock propagator does not enforce: it keeps the valid members of
 * an invalid header, keeps the last of duplicated keys and cuts lists longer than 32. The spec treats such a
 * header as invalid; the parent is kept and the tracestate dropped.
 */
const SIMPLE_KEY = /^[a-z][a-z0-9_\-*/]{0,255}$/;
const TENANT_KEY = /^[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}$/;
// chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E; the last character is not blank.
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const MAX_MEMBERS = 32;

export function isValidTraceState(header: string): boolean {
  const keys = new Set<string>();
  for (const raw of header.split(',')) {
    const member = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (member === '') continue; // empty list members are allowed
    const at = member.indexOf('=');
    if (at <= 0) return false;
    const key = member.slice(0, at);
    const value = member.slice(at + 1);
    if (!(SIMPLE_KEY.test(key) || TENANT_KEY.test(key)) || !VALUE.test(value) || keys.has(key)) return false;
    keys.add(key);
    if (keys.size > MAX_MEMBERS) return false;
  }
  return true;
}
