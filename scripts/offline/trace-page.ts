/**
 * The received spans as one self-contained HTML page: a waterfall per trace, spans nested by parent, each
 * span's details (attributes, events with an exception's stack, resource, links) behind a click. A long idle gap
 * between spans is drawn as a narrow labelled break in the time axis, and a retried SQS record's receives are
 * marked with their attempt. `npm start` writes it to a file and
 * `npm run offline` serves it live. The page loads nothing: CSS and script are inline, its Content Security
 * Policy forbids everything else, and every received value is escaped (span names and attributes are user data).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ReceivedEvent, ReceivedLink, ReceivedSpan } from './otlp-receiver';
import { attemptLabel, attemptsOf, compressedAxis, idleGaps, idleLabel, type Attempt, type TimeAxis } from './trace-timeline';

export interface TracePageOptions {
  /** The page's title and heading. */
  title?: string;
  /**
   * Served by `startTracePageServer`: the page asks the server for its span count and, when it has changed,
   * swaps in the traces of a fresh copy of itself.
   */
  live?: boolean;
  /** When the page was made (a written page outlives the run). */
  madeAt?: Date;
}

/** A received span as JSON: times as decimal strings of nanoseconds, since JSON has no bigint. */
export interface SpanJson extends Omit<ReceivedSpan, 'startNs' | 'endNs' | 'events'> {
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  events?: { name: string; timeUnixNano: string; attributes: Record<string, unknown> }[];
}

/** The spans as JSON can hold them: nanosecond times as strings (JSON has no bigint). */
export function spansToJson(spans: readonly ReceivedSpan[]): SpanJson[] {
  return spans.map(({ startNs, endNs, events, ...rest }) => ({
    ...rest,
    startTimeUnixNano: String(startNs),
    endTimeUnixNano: String(endNs),
    ...(events ? { events: events.map(({ timeNs, ...event }) => ({ ...event, timeUnixNano: String(timeNs) })) } : {}),
  }));
}

/** Paths the live page polls and reloads from; the server answers exactly these. */
export const LIVE_PATHS = { page: '/', traces: '/api/traces', spanCount: '/api/traces/count' } as const;

// Polls the span count; on a change fetches the page again and swaps its traces in, keeping open details
// open. Static text, so that the Content Security Policy can allow exactly this script by its hash.
const LIVE_SCRIPT = `(() => {
  const status = document.getElementById('live-status');
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const current = document.getElementById('traces');
      const { spanCount } = await (await fetch(${JSON.stringify(LIVE_PATHS.spanCount)}, { cache: 'no-store' })).json();
      status.textContent = 'live: updates as spans arrive';
      if (spanCount === Number(current.dataset.spanCount)) return;
      const html = await (await fetch(${JSON.stringify(LIVE_PATHS.page)}, { cache: 'no-store' })).text();
      const fresh = new DOMParser().parseFromString(html, 'text/html');
      const next = fresh.getElementById('traces');
      for (const open of document.querySelectorAll('details.span[open]')) {
        next.querySelector('#' + CSS.escape(open.id))?.setAttribute('open', '');
      }
      current.replaceWith(document.adoptNode(next));
      document.getElementById('summary').replaceWith(document.adoptNode(fresh.getElementById('summary')));
    } catch {
      status.textContent = 'not connected: has npm run offline stopped?';
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, 1000);
})();`;
const LIVE_SCRIPT_HASH = createHash('sha256').update(LIVE_SCRIPT).digest('base64');

// Service colours exclude red, which marks errors.
const SERVICE_COLOURS = ['#2563eb', '#0d9488', '#7c3aed', '#d97706', '#16a34a', '#0891b2', '#4f46e5', '#65a30d', '#475569', '#c026d3'];

const STYLE = `
:root { color-scheme: light; --line: #e2e8f0; --muted: #64748b; --error: #dc2626; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #0f172a; background: #f8fafc; }
header { padding: 16px 24px 8px; }
h1 { font-size: 18px; margin: 0 0 4px; }
#summary, .trace-meta { color: var(--muted); margin: 0; }
main { padding: 0 24px 24px; }
.empty { color: var(--muted); }
.trace { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 16px 0; padding: 12px 16px; }
.trace h2 { font-size: 15px; margin: 0 0 2px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.services { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; padding: 0; margin: 8px 0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.row { display: grid; grid-template-columns: minmax(260px, 38%) 1fr 88px; gap: 12px; align-items: center; }
.scale { color: var(--muted); font-size: 12px; border-bottom: 1px solid var(--line); padding: 4px 0; }
.ticks { display: flex; justify-content: space-between; }
details.span { border-bottom: 1px solid var(--line); }
details.span > summary { list-style: none; cursor: pointer; padding: 4px 0; }
details.span > summary::-webkit-details-marker { display: none; }
details.span > summary:hover { background: #f1f5f9; }
details.span[open] > summary { background: #eff6ff; }
.label { min-width: 0; }
.toggle { display: inline-block; width: 1em; color: var(--muted); }
details[open] > summary .toggle { transform: rotate(90deg); }
.span-name { font-weight: 600; overflow-wrap: anywhere; }
.span-meta { display: block; color: var(--muted); font-size: 12px; padding-left: 1em; }
/* Two lines at most in the row (a stack trace can be the message); the details show all of it. */
.span-error { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 2; overflow: hidden; color: var(--error); font-weight: 600; font-size: 12px; padding-left: 1em; overflow-wrap: anywhere; }
.track { position: relative; height: 14px; background: repeating-linear-gradient(to right, transparent 0 calc(25% - 1px), var(--line) calc(25% - 1px) 25%); }
/* A compressed axis is not linear: no quarter lines; each gap a hatched break, labelled on the scale. */
.trace.compressed .track { background: none; }
.ticks.compressed { display: block; position: relative; height: 2.8em; }
.ticks.compressed .tick { position: absolute; top: 0; padding: 0 3px; white-space: nowrap; }
.ticks.compressed .tick.end { right: 0; }
.gap { position: absolute; top: 0; bottom: 0; background: repeating-linear-gradient(135deg, #f1f5f9 0 4px, #cbd5e1 4px 5px); border-left: 1px dashed #94a3b8; border-right: 1px dashed #94a3b8; }
.gap-label { position: absolute; bottom: 0; transform: translateX(-50%); white-space: nowrap; color: #334155; font-weight: 600; }
.bar { position: absolute; top: 0; bottom: 0; min-width: 2px; border-radius: 2px; }
details.span[data-status="ERROR"] .bar { background: var(--error) !important; }
details.span[data-status="ERROR"] > summary { box-shadow: inset 3px 0 0 var(--error); }
.duration { text-align: right; font-variant-numeric: tabular-nums; }
.span-details { padding: 8px 16px 12px; background: #fbfdff; }
.span-details h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 10px 0 4px; }
.span-details ol.events { margin: 0; padding-left: 20px; }
.span-details pre.stack { margin: 4px 0 8px; padding: 8px; background: #fef2f2; color: #7f1d1d; font-size: 12px; overflow-x: auto; white-space: pre; }
.span-details table { border-collapse: collapse; width: 100%; }
.span-details td { border-top: 1px solid var(--line); padding: 2px 8px 2px 0; vertical-align: top; overflow-wrap: anywhere; }
.span-details td:first-child { width: 30%; color: var(--muted); }
.status-error { color: var(--error); font-weight: 600; }
${SERVICE_COLOURS.map((colour, index) => `.svc-${index} { background: ${colour}; }`).join('\n')}
`;

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** JSON for a `<script type="application/json">` block: nothing in it can end the block or open a comment. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The whole page for these spans, every trace among them, newest first. */
export function renderTracePage(spans: readonly ReceivedSpan[], options: TracePageOptions = {}): string {
  const title = options.title ?? 'Traces';
  const traces = groupByTrace(spans);
  const serviceColours = new Map<string, number>();
  for (const span of [...spans].sort(byStart)) {
    const service = serviceOf(span);
    if (!serviceColours.has(service)) serviceColours.set(service, serviceColours.size % SERVICE_COLOURS.length);
  }
  const scriptSource = options.live ? `'sha256-${LIVE_SCRIPT_HASH}'` : "'none'";
  // Our own constant, no received value in it: written into the page as it is.
  const csp = `default-src 'none'; style-src 'unsafe-inline'; script-src ${scriptSource}; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'`;
  const spanIdsOnPage = new Set(spans.map((span) => span.spanId));
  const made = options.madeAt ? ` · made ${escapeHtml(options.madeAt.toISOString())}` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p><span id="summary">${count(traces.length, 'trace')} · ${count(spans.length, 'span')}${made}</span>${options.live ? ' · <span id="live-status">live: updates as spans arrive</span>' : ''}</p>
</header>
<main id="traces" data-span-count="${spans.length}">
${traces.length === 0 ? '<p class="empty">No spans received yet: send a request and they will appear here.</p>' : traces.map((trace) => renderTrace(trace, serviceColours, spanIdsOnPage)).join('\n')}
<script type="application/json" id="trace-spans">${jsonForScript(spansToJson(spans))}</script>
</main>
${options.live ? `<script>${LIVE_SCRIPT}</script>\n` : ''}</body>
</html>
`;
}

/** Writes the page to `file` (its folder created), for a run that ends before anyone looks. */
export async function writeTracePage(file: string, spans: readonly ReceivedSpan[], options: TracePageOptions = {}): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, renderTracePage(spans, options));
}

interface Trace {
  traceId: string;
  spans: ReceivedSpan[];
  spanIds: Set<string>;
  startNs: bigint;
  endNs: bigint;
}

function groupByTrace(spans: readonly ReceivedSpan[]): Trace[] {
  const byId = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    const members = byId.get(span.traceId);
    if (members) members.push(span);
    else byId.set(span.traceId, [span]);
  }
  return [...byId]
    .map(([traceId, members]) => {
      const sorted = members.sort(byStart);
      const endNs = sorted.reduce((latest, span) => (span.endNs > latest ? span.endNs : latest), sorted[0].startNs);
      return { traceId, spans: sorted, spanIds: new Set(sorted.map((span) => span.spanId)), startNs: sorted[0].startNs, endNs };
    })
    .sort((a, b) => (a.startNs > b.startNs ? -1 : a.startNs < b.startNs ? 1 : 0));
}

/** The spans in display order, each with its depth: parents before children, siblings by start time. */
function treeOrder(spans: readonly ReceivedSpan[]): { span: ReceivedSpan; depth: number }[] {
  const ids = new Set(spans.map((span) => span.spanId));
  const children = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    if (!span.parentSpanId || !ids.has(span.parentSpanId)) continue;
    const siblings = children.get(span.parentSpanId);
    if (siblings) siblings.push(span);
    else children.set(span.parentSpanId, [span]);
  }
  const ordered: { span: ReceivedSpan; depth: number }[] = [];
  const placed = new Set<ReceivedSpan>();
  const walk = (span: ReceivedSpan, depth: number) => {
    if (placed.has(span)) return;
    placed.add(span);
    ordered.push({ span, depth });
    for (const child of children.get(span.spanId) ?? []) walk(child, depth + 1);
  };
  for (const span of spans) if (!span.parentSpanId || !ids.has(span.parentSpanId)) walk(span, 0);
  // Spans whose parents form a cycle (malformed input) have no root: shown at the top level rather than lost.
  for (const span of spans) walk(span, 0);
  return ordered;
}

function renderTrace(trace: Trace, serviceColours: Map<string, number>, spanIdsOnPage: Set<string>): string {
  const total = trace.endNs - trace.startNs;
  const ids = trace.spanIds;
  const services = [...new Set(trace.spans.map(serviceOf))];
  const remoteParents = [...new Set(trace.spans.filter((span) => span.parentSpanId && !ids.has(span.parentSpanId)).map((span) => span.parentSpanId!))];
  const meta = [
    count(trace.spans.length, 'span'),
    count(services.length, 'service'),
    ms(total),
    `started ${isoTime(trace.startNs)}`,
    ...(remoteParents.length ? [`continues ${remoteParents.length === 1 ? 'parent' : 'parents'} not received: ${remoteParents.join(', ')}`] : []),
  ];
  const axis = compressedAxis(trace.startNs, trace.endNs, idleGaps(trace.spans));
  const attempts = attemptsOf(trace.spans);
  const bands = gapBands(axis);
  const drawing: SpanDrawing = { trace, axis, attempts, gapBands: bands, serviceColours, spanIdsOnPage };
  const rows = treeOrder(trace.spans).map(({ span, depth }) => renderSpan(span, depth, drawing));
  return `<section class="trace${axis.gaps.length ? ' compressed' : ''}" id="trace-${escapeHtml(trace.traceId)}" data-trace-id="${escapeHtml(trace.traceId)}">
<h2>trace <code class="trace-id">${escapeHtml(trace.traceId)}</code></h2>
<p class="trace-meta">${meta.map(escapeHtml).join(' · ')}</p>
<ul class="services">${services.map((service) => `<li><span class="swatch svc-${serviceColours.get(service)}"></span>${escapeHtml(service)}</li>`).join('')}</ul>
<div class="row scale"><span>span · service · kind</span>${renderScale(trace, axis, bands)}<span class="duration">duration</span></div>
${rows.join('\n')}
</section>`;
}

/**
 * The time scale above the rows: quarters of a linear axis; on a compressed one, the true time where each stretch
 * between gaps begins, and each gap's band with its label.
 */
function renderScale(trace: Trace, axis: TimeAxis, bands: string): string {
  const total = trace.endNs - trace.startNs;
  if (axis.gaps.length === 0) {
    return `<span class="ticks">${[0, 1, 2, 3, 4].map((quarter) => `<span>${ms((total * BigInt(quarter)) / 4n)}</span>`).join('')}</span>`;
  }
  // A stretch too narrow for its label gets none; the last label is the trace's end, at the right edge.
  const stretches = [
    { startNs: trace.startNs, from: 0, to: axis.gaps[0].from },
    ...axis.gaps.map((gap, index) => ({ startNs: gap.endNs, from: gap.to, to: axis.gaps[index + 1]?.from ?? 1 })),
  ];
  const ticks = stretches
    .filter((stretch, index) => index === 0 || stretch.to - stretch.from >= 0.12)
    .map((stretch) => `<span class="tick" style="left:${percent(stretch.from)}">${escapeHtml(ms(stretch.startNs - trace.startNs))}</span>`);
  const labels = axis.gaps.map((gap) => `<span class="gap-label" style="left:${percent((gap.from + gap.to) / 2)}">${escapeHtml(idleLabel(gap))}</span>`);
  return `<span class="ticks compressed">${bands}${ticks.join('')}<span class="tick end">${escapeHtml(ms(total))}</span>${labels.join('')}</span>`;
}

/** The hatched bands that mark the compressed gaps, drawn in the scale and in every row's track. */
function gapBands(axis: TimeAxis): string {
  return axis.gaps
    .map((gap) => `<span class="gap" style="left:${percent(gap.from)};width:${percent(gap.to - gap.from)}" title="${escapeHtml(idleLabel(gap))}"></span>`)
    .join('');
}

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(3)}%`;
}

/** What drawing a row needs from its trace. */
interface SpanDrawing {
  trace: Trace;
  axis: TimeAxis;
  attempts: Map<ReceivedSpan, Attempt>;
  gapBands: string;
  serviceColours: Map<string, number>;
  spanIdsOnPage: Set<string>;
}

function renderSpan(span: ReceivedSpan, depth: number, drawing: SpanDrawing): string {
  const { trace, axis, serviceColours, spanIdsOnPage } = drawing;
  const duration = span.endNs > span.startNs ? span.endNs - span.startNs : 0n;
  const left = axis.position(span.startNs);
  const width = axis.position(span.startNs + duration) - left;
  const service = serviceOf(span);
  const httpStatus = span.attributes['http.response.status_code'];
  const attempt = drawing.attempts.get(span);
  const metaParts = [service, span.kind, ...(httpStatus === undefined ? [] : [String(httpStatus)]), ...(attempt ? [attemptLabel(attempt)] : [])];
  const error = span.status === 'ERROR' ? `<span class="span-error">${escapeHtml(errorText(span))}</span>` : '';
  const parentKnown = span.parentSpanId !== undefined && trace.spanIds.has(span.parentSpanId);
  const facts: [string, string][] = [
    ['span id', `<code>${escapeHtml(span.spanId)}</code>`],
    ['parent span id', span.parentSpanId ? `<code>${escapeHtml(span.parentSpanId)}</code>${parentKnown ? '' : ' (not received)'}` : '(root)'],
    ['service', escapeHtml(service)],
    ['kind', escapeHtml(span.kind)],
    ['start', `+${escapeHtml(ms(span.startNs - trace.startNs))} · ${escapeHtml(isoTime(span.startNs))}`],
    ['duration', escapeHtml(ms(duration))],
    ['status', span.status === 'ERROR' ? `<span class="status-error">${escapeHtml(errorText(span))}</span>` : escapeHtml(span.status)],
    ...(attempt ? [['attempt', escapeHtml(attemptLabel(attempt))] as [string, string]] : []),
  ];
  const links = span.links ?? [];
  const events = span.events ?? [];
  return `<details class="span" id="span-${escapeHtml(span.spanId)}" data-span-id="${escapeHtml(span.spanId)}" data-parent-span-id="${escapeHtml(span.parentSpanId ?? '')}" data-depth="${depth}" data-status="${escapeHtml(span.status)}"${attempt ? ` data-attempt="${attempt.attempt}"` : ''}>
<summary class="row"><span class="label" style="padding-left:${depth * 16}px"><span class="toggle">▸</span><span class="span-name">${escapeHtml(span.name)}</span><span class="span-meta">${metaParts.map(escapeHtml).join(' · ')}</span>${error}</span><span class="track">${drawing.gapBands}<span class="bar svc-${serviceColours.get(service)}" style="left:${percent(left)};width:${percent(width)}"></span></span><span class="duration">${escapeHtml(ms(duration))}</span></summary>
<div class="span-details">
${table('span', facts, 'facts')}
${table('attributes', valueRows(span.attributes), 'attributes')}
${events.length ? `<h3>events</h3><ol class="events">${events.map((event) => `<li>${renderEvent(event, trace)}</li>`).join('')}</ol>` : ''}
${links.length ? `<h3>links</h3><ul class="links">${links.map((link) => `<li>${renderLink(link, spanIdsOnPage)}</li>`).join('')}</ul>` : ''}
${table('resource', valueRows(span.resource), 'resource')}
</div>
</details>`;
}

/** An event: its name and time; an exception's type and message, and its stack as preformatted text. */
function renderEvent(event: ReceivedEvent, trace: Trace): string {
  const { 'exception.stacktrace': stack, ...others } = event.attributes;
  const heading = `<span class="mono">${escapeHtml(event.name)}</span> at +${escapeHtml(ms(event.timeNs - trace.startNs))}`;
  const rows = Object.keys(others).length ? table('', valueRows(others), 'event-attributes') : '';
  return `${heading}${rows}${typeof stack === 'string' && stack !== '' ? `<pre class="stack">${escapeHtml(stack)}</pre>` : ''}`;
}

function renderLink(link: ReceivedLink, spanIdsOnPage: Set<string>): string {
  const target = `trace <code>${escapeHtml(link.traceId)}</code> span <code>${escapeHtml(link.spanId)}</code>`;
  const attributes = Object.keys(link.attributes).length
    ? ` (${Object.entries(link.attributes)
        .map(([key, value]) => `${escapeHtml(key)}=${escapeHtml(formatValue(value))}`)
        .join(', ')})`
    : '';
  const anchor = spanIdsOnPage.has(link.spanId) ? `<a href="#span-${escapeHtml(link.spanId)}">${target}</a>` : `${target} (not received)`;
  return anchor + attributes;
}

/** A two-column table of rows that are HTML already (their values escaped by the caller). */
function table(heading: string, rows: [string, string][], className: string): string {
  const body = rows.length ? rows.map(([key, value]) => `<tr><td>${key}</td><td>${value}</td></tr>`).join('') : '<tr><td>(none)</td><td></td></tr>';
  return `${heading ? `<h3>${escapeHtml(heading)}</h3>` : ''}<table class="${className}"><tbody>${body}</tbody></table>`;
}

function valueRows(values: Record<string, unknown>): [string, string][] {
  return Object.keys(values)
    .sort()
    .map((key) => [`<span class="mono">${escapeHtml(key)}</span>`, `<span class="mono">${escapeHtml(formatValue(values[key]))}</span>`]);
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  return JSON.stringify(value) ?? String(value);
}

/** `ERROR TypeError: the message`, the way the terminal tree says it. */
function errorText(span: ReceivedSpan): string {
  const reason = [span.attributes['error.type'], span.statusMessage].filter((part) => part !== undefined && part !== '').join(': ');
  return reason ? `ERROR ${reason}` : 'ERROR';
}

function serviceOf(span: ReceivedSpan): string {
  return String(span.resource['service.name'] ?? 'unknown_service');
}

function byStart(a: ReceivedSpan, b: ReceivedSpan): number {
  return a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The wall-clock time of a timestamp; one out of Date's range (a sender's bad clock) does not break the page. */
function isoTime(ns: bigint): string {
  const time = new Date(Number(ns / 1_000_000n));
  return Number.isNaN(time.getTime()) ? `${ns} ns since the epoch` : time.toISOString();
}

/** Milliseconds with one decimal, as the terminal tree prints them. */
function ms(ns: bigint): string {
  return `${(Number(ns) / 1e6).toFixed(1)} ms`;
}
