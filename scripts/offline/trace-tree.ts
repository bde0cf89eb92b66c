import type { OtlpReceiver, ReceivedSpan } from './otlp-receiver';
import { attemptLabel, attemptsOf, idleGaps, idleLabel } from './trace-timeline';

/** The spans of one trace, grouped: what `npm start` waits for and prints. */
export function spansOfTrace(spans: readonly ReceivedSpan[], traceId: string): ReceivedSpan[] {
  return spans.filter((span) => span.traceId === traceId);
}

/** The function a span came from: the Lambda function name the runtime reported, or the service name. */
export function functionOf(span: ReceivedSpan): string {
  return String(span.resource['faas.name'] ?? span.resource['service.name'] ?? '?');
}

/**
 * True when the spans form one tree (every parent present but the root's, which may be remote) and the trace
 * holds a span from each of the named functions.
 */
export function isConnectedTrace(spans: readonly ReceivedSpan[], functions: readonly string[]): boolean {
  if (spans.length === 0) return false;
  const ids = new Set(spans.map((span) => span.spanId));
  const roots = spans.filter((span) => !span.parentSpanId || !ids.has(span.parentSpanId));
  const seen = new Set(spans.map(functionOf));
  return roots.length === 1 && functions.every((name) => seen.has(name));
}

/**
 * Renders one trace as an indented tree with kind, function, start offset and duration per span. A long idle gap
 * the tree steps over is a line of its own (`⋯ 29.8 s idle ⋯`); a retried SQS record's receives are marked
 * `attempt 2 of 3`.
 */
export function renderTraceTree(spans: readonly ReceivedSpan[], options: { color?: boolean; functionPrefix?: string } = {}): string {
  if (spans.length === 0) return '(no spans)';
  const paint = (code: string, text: string) => (options.color ? `\u001b[${code}m${text}\u001b[0m` : text);
  const ids = new Set(spans.map((span) => span.spanId));
  const byStart = [...spans].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  const start = byStart[0].startNs;
  const end = byStart.reduce((latest, span) => (span.endNs > latest ? span.endNs : latest), start);
  const functions = [...new Set(spans.map(functionOf))];
  const prefix = options.functionPrefix ?? '';
  const attempts = attemptsOf(spans);

  // `gapLead`: what a gap line before the row starts with, so that the lines of the tree run through it.
  const rows: { cells: string[]; gapLead: string; startNs: bigint }[] = [];
  const walk = (span: ReceivedSpan, lead: string, last: boolean, depth: number, first: boolean) => {
    const branch = depth === 0 ? '' : `${lead}${last ? '└─ ' : '├─ '}`;
    const attempt = attempts.get(span);
    rows.push({
      gapLead: depth === 0 || first ? lead : `${lead}│  `,
      startNs: span.startNs,
      cells: [
        `${branch}${span.name}${attempt ? ` · ${attemptLabel(attempt)}` : ''}`,
        span.kind,
        functionOf(span).startsWith(prefix) ? functionOf(span).slice(prefix.length) : functionOf(span),
        `+${ms(span.startNs - start)}`,
        ms(span.endNs - span.startNs),
        outcomeOf(span, paint),
      ],
    });
    const children = byStart.filter((child) => child.parentSpanId === span.spanId);
    const nextLead = depth === 0 ? '' : `${lead}${last ? '   ' : '│  '}`;
    children.forEach((child, index) => walk(child, nextLead, index === children.length - 1, depth + 1, index === 0));
  };
  const roots = byStart.filter((span) => !span.parentSpanId || !ids.has(span.parentSpanId));
  roots.forEach((root) => walk(root, '', true, 0, true));

  const header = ['span', 'kind', 'function', 'start', 'duration', 'outcome'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => visible(row.cells[column]).length)));
  const line = (row: string[]) =>
    row
      .map((cell, column) => (column >= 3 && column <= 4 ? cell.padStart(widths[column]) : pad(cell, widths[column])))
      .join('  ')
      .trimEnd();
  const remote = roots.find((root) => root.parentSpanId)?.parentSpanId;
  // Between two rows, a line for each long gap the tree steps over going forward in time: the start column stays
  // true, the line says where the time went.
  const gaps = idleGaps(spans);
  const body = rows.flatMap((row, index) => {
    const previous = rows[index - 1];
    const crossed = previous ? gaps.filter((gap) => previous.startNs <= gap.startNs && gap.endNs <= row.startNs) : [];
    return [...crossed.map((gap) => paint('2', `${row.gapLead}${idleLabel(gap)}`)), line(row.cells)];
  });
  return [
    paint('1', `trace ${spans[0].traceId}`) +
      ` · ${count(spans.length, 'span')} · ${count(functions.length, 'service')} · ${ms(end - start)}` +
      (remote ? ` · continues remote parent ${remote}` : ''),
    paint('2', line(header)),
    ...body,
  ].join('\n');
}

/** The HTTP status a SERVER or CLIENT span recorded, and for a failed span why: `500 ERROR TypeError: …`. */
function outcomeOf(span: ReceivedSpan, paint: (code: string, text: string) => string): string {
  const status = span.attributes['http.response.status_code'];
  const parts = status === undefined ? [] : [String(status)];
  if (span.status === 'ERROR') {
    const reason = [span.attributes['error.type'], span.statusMessage].filter((part) => part !== undefined && part !== '').join(': ');
    parts.push(paint('31', reason ? `ERROR ${reason}` : 'ERROR'));
  }
  return parts.join(' ');
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function ms(ns: bigint): string {
  return `${(Number(ns) / 1e6).toFixed(1)} ms`;
}

function visible(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[\d+m/g, '');
}

function pad(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - visible(text).length));
}

/**
 * Waits until a trace has at least `count` spans forming one tree across `functions`, and returns its spans;
 * rejects after `timeoutMs`.
 */
export async function waitForConnectedTrace(
  receiver: OtlpReceiver,
  traceId: string,
  expected: { count: number; functions: readonly string[] },
  timeoutMs: number,
): Promise<ReceivedSpan[]> {
  const spans = await receiver.waitFor((received) => {
    const trace = spansOfTrace(received, traceId);
    return trace.length >= expected.count && isConnectedTrace(trace, expected.functions);
  }, timeoutMs);
  return spansOfTrace(spans, traceId);
}
