/**
 * The time line of one trace as the tree and the page show it: the long idle gaps between its spans (a queue's
 * batching window, a retried message's visibility timeout), a time axis that draws each such gap as a narrow
 * labelled break so the spans on both sides stay readable, and which receive of its message a consumer span is.
 * Only the drawing is compressed: every time the tree and the page print stays the true one.
 */
import { ATTR_SQS_RECEIVE_COUNT } from '../../lib/carriers/sqs';
import type { ReceivedSpan } from './otlp-receiver';

/** A stretch of time no span of the trace covers. */
export interface IdleGap {
  startNs: bigint;
  endNs: bigint;
}

// A gap is long when it lasts at least this long and at least this share of the time the spans cover: drawn to
// scale it would take a quarter of the axis or more, squeezing the spans into the rest.
const LONG_GAP_FLOOR_NS = 100_000_000n;
const LONG_GAP_SHARE_OF_BUSY = 1 / 3;
// The share of the axis each compressed gap is drawn with, and the most all of them may take together.
const GAP_BAND_SHARE = 0.06;
const ALL_GAP_BANDS_SHARE = 0.3;

/** The long idle gaps between the spans, in time order. */
export function idleGaps(spans: readonly ReceivedSpan[]): IdleGap[] {
  const intervals = spans
    .map((span) => ({ startNs: span.startNs, endNs: span.endNs > span.startNs ? span.endNs : span.startNs }))
    .sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  const gaps: IdleGap[] = [];
  let busyNs = 0n;
  let covered: IdleGap | undefined;
  for (const interval of intervals) {
    if (covered && interval.startNs <= covered.endNs) {
      if (interval.endNs > covered.endNs) covered.endNs = interval.endNs;
      continue;
    }
    if (covered) {
      busyNs += covered.endNs - covered.startNs;
      gaps.push({ startNs: covered.endNs, endNs: interval.startNs });
    }
    covered = { ...interval };
  }
  if (covered) busyNs += covered.endNs - covered.startNs;
  return gaps.filter((gap) => {
    const length = gap.endNs - gap.startNs;
    return length >= LONG_GAP_FLOOR_NS && Number(length) >= Number(busyNs) * LONG_GAP_SHARE_OF_BUSY;
  });
}

/** `⋯ 29.8 s idle ⋯`: how a compressed gap is labelled, in the tree and on the page. */
export function idleLabel(gap: IdleGap): string {
  const ns = Number(gap.endNs - gap.startNs);
  return `⋯ ${ns >= 1e9 ? `${(ns / 1e9).toFixed(1)} s` : `${(ns / 1e6).toFixed(1)} ms`} idle ⋯`;
}

/** A gap as the axis draws it: its band, from `from` to `to`, as fractions of the axis. */
export interface DrawnGap extends IdleGap {
  from: number;
  to: number;
}

export interface TimeAxis {
  /** Where a time falls on the axis, from 0 (the trace's start) to 1 (its end). */
  position(ns: bigint): number;
  gaps: DrawnGap[];
}

/**
 * The axis from `startNs` to `endNs` with each gap drawn as a band of a fixed share: the rest of the axis is one
 * linear scale for all the time outside the gaps.
 */
export function compressedAxis(startNs: bigint, endNs: bigint, gaps: readonly IdleGap[]): TimeAxis {
  const total = Number(endNs - startNs);
  const idle = gaps.reduce((sum, gap) => sum + Number(gap.endNs - gap.startNs), 0);
  const shown = total - idle;
  const band = gaps.length === 0 ? 0 : shown > 0 ? Math.min(GAP_BAND_SHARE, ALL_GAP_BANDS_SHARE / gaps.length) : 1 / gaps.length;
  const scale = shown > 0 ? (1 - band * gaps.length) / shown : 0;
  const position = (ns: bigint): number => {
    if (total <= 0) return 0;
    let at = 0;
    let from = startNs;
    for (const gap of gaps) {
      if (ns <= gap.startNs) break;
      at += Number(gap.startNs - from) * scale;
      if (ns < gap.endNs) return at + (Number(ns - gap.startNs) / Number(gap.endNs - gap.startNs)) * band;
      at += band;
      from = gap.endNs;
    }
    return Math.max(0, Math.min(1, at + Number((ns < endNs ? ns : endNs) - from) * scale));
  };
  return { position, gaps: gaps.map((gap) => ({ ...gap, from: position(gap.startNs), to: position(gap.endNs) })) };
}

/**
 * Span attributes that may say which receive of its message a consumer span handled (SQS's
 * ApproximateReceiveCount): the kit's own first, then names other instrumentations use; the first one present wins.
 */
export const RECEIVE_COUNT_ATTRIBUTES = [
  ATTR_SQS_RECEIVE_COUNT,
  'messaging.sqs.message.receive_count',
  'aws.sqs.receive_count',
  'messaging.message.delivery_count',
] as const;

export interface Attempt {
  attempt: number;
  of: number;
}

/**
 * Which attempt each SQS consumer span is, for messages the trace holds more than one receive of (or whose span
 * says it is not the first): spans with the same `messaging.message.id` are receives of one message, numbered by
 * their receive count when they carry one, else in start order.
 */
export function attemptsOf(spans: readonly ReceivedSpan[]): Map<ReceivedSpan, Attempt> {
  const byMessage = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    const id = span.attributes['messaging.message.id'];
    if (span.kind !== 'CONSUMER' || span.attributes['messaging.system'] !== 'aws_sqs' || typeof id !== 'string' || id === '') continue;
    byMessage.set(id, [...(byMessage.get(id) ?? []), span]);
  }
  const attempts = new Map<ReceivedSpan, Attempt>();
  for (const receives of byMessage.values()) {
    receives.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
    const numbers = receives.map((span, index) => receiveCountOf(span) ?? index + 1);
    const of = Math.max(receives.length, ...numbers);
    if (of > 1) receives.forEach((span, index) => attempts.set(span, { attempt: numbers[index], of }));
  }
  return attempts;
}

function receiveCountOf(span: ReceivedSpan): number | undefined {
  for (const name of RECEIVE_COUNT_ATTRIBUTES) {
    const raw = span.attributes[name];
    // SQS hands the count over as a string; a span may record it as either.
    const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    if (Number.isSafeInteger(value) && value > 0) return value;
  }
  return undefined;
}

/** `attempt 2 of 3`, as the tree and the page mark a receive. */
export function attemptLabel(attempt: Attempt): string {
  return `attempt ${attempt.attempt} of ${attempt.of}`;
}
