import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { escapeHtml, renderTracePage, spansToJson } from '../../scripts/offline/trace-page';
import { fixtureSpans, fixtureTraces, HOSTILE_ATTRIBUTE, HOSTILE_NAME, linkedTrace, okTrace, retriedTrace } from './trace-page-fixture';

// The page as text: what it escapes, embeds and allows. test/offline/trace-page.e2e.test.ts looks at it in Chromium.
const embeddedSpans = (html: string) => JSON.parse(/<script type="application\/json" id="trace-spans">(.*?)<\/script>/s.exec(html)![1]);
const tags = (html: string) => [...html.matchAll(/<([a-z][a-z0-9]*)\b[^>]*>/g)].map((match) => match[0]);

describe('the trace page', () => {
  it('renders a span name and attribute that are markup as text, and embeds them unchanged', () => {
    const html = renderTracePage(fixtureSpans());

    expect(html).toContain('<span class="span-name">&#60;img src=x onerror=alert(1)&#62;</span>');
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;/script&#62;&#60;script&#62;alert(2)&#60;/script&#62;');
    expect(tags(html).filter((tag) => tag.startsWith('<script'))).toEqual(['<script type="application/json" id="trace-spans">']);
    const embedded = embeddedSpans(html);
    expect(embedded.find((span: { name: string }) => span.name === HOSTILE_NAME).attributes['customer.note']).toBe(HOSTILE_ATTRIBUTE);
    expect(embedded).toEqual(JSON.parse(JSON.stringify(spansToJson(fixtureSpans()))));
  });

  it('escapes the characters that end text or a quoted attribute', () => {
    expect(escapeHtml(`<a href="x" title='y'>&amp;</a>`)).toBe('&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;amp;&#60;/a&#62;');
    const html = renderTracePage([{ ...okTrace.spans[0].span, spanId: '1" onmouseover="alert(3)' }]);
    expect(html).not.toContain('" onmouseover="');
    expect(html).toContain('data-span-id="1&#34; onmouseover=&#34;alert(3)"');
  });

  it('loads nothing: no source or stylesheet address, links only within the page, a policy that forbids the rest', () => {
    const html = renderTracePage(fixtureSpans());

    expect(tags(html).filter((tag) => /\s(src|srcset|action|poster|data)=/.test(tag))).toEqual([]);
    expect(tags(html).filter((tag) => tag.startsWith('<link'))).toEqual([]);
    expect([...html.matchAll(/\shref="([^"]*)"/g)].map((match) => match[1])).toEqual(['#span-a000000000000004']);
    expect(html).toContain(`script-src 'none'; connect-src 'self'; img-src 'none'`);
  });

  it('live, allows exactly its own script by hash', () => {
    const html = renderTracePage([], { live: true });

    const script = /<script>(.*?)<\/script>/s.exec(html)![1];
    const hash = createHash('sha256').update(script).digest('base64');
    expect(html).toContain(`script-src 'sha256-${hash}'`);
    expect(html).toContain('No spans received yet');
  });

  it('shows every span of malformed input: parents in a cycle, a time out of range', () => {
    const base = okTrace.spans[0].span;
    const html = renderTracePage([
      { ...base, spanId: 'c1', parentSpanId: 'c2', name: 'first of a cycle' },
      { ...base, spanId: 'c2', parentSpanId: 'c1', name: 'second of a cycle' },
      { ...base, traceId: 'f'.repeat(32), spanId: 'late', startNs: 10n ** 30n, endNs: 10n ** 30n + 5n, name: 'far future' },
    ]);

    expect([...html.matchAll(/<span class="span-name">([^<]*)</g)].map((match) => match[1])).toEqual(['far future', 'first of a cycle', 'second of a cycle']);
    expect(html).toContain('started 1000000000000000000000000000000 ns since the epoch');
  });

  it('shows every trace newest first, with its spans, services and duration', () => {
    const html = renderTracePage(fixtureSpans(), { title: 'npm start · trace x', madeAt: new Date('2026-01-01T00:00:00Z') });

    expect([...html.matchAll(/<section class="trace[^"]*" id="trace-([0-9a-f]+)"/g)].map((match) => match[1])).toEqual(
      [...fixtureTraces].reverse().map((trace) => trace.traceId),
    );
    expect(html).toContain('<p class="trace-meta">8 spans · 4 services · 10210.2 ms · started 2026-01-01T00:00:00.000Z</p>');
    expect(html).toContain('3 traces · 16 spans · made 2026-01-01T00:00:00.000Z');
    expect(html).toContain('<span class="span-error">ERROR DeliveryError: no mail server for ada@example.invalid</span>');
    const rows = [...html.matchAll(/data-span-id="([0-9a-f]+)" data-parent-span-id="[0-9a-f]*" data-depth="(\d+)"/g)].map((match) => [
      match[1],
      Number(match[2]),
    ]);
    expect(rows).toEqual([...fixtureTraces].reverse().flatMap((trace) => trace.spans.map(({ span, depth }) => [span.spanId, depth])));
  });

  it('draws each long idle gap as a labelled break in the axis, so the spans on both sides keep their width', () => {
    const html = renderTracePage(fixtureSpans([retriedTrace, linkedTrace]));

    const section = /<section class="([^"]*)"[^>]*data-trace-id="5b8e[^]*?<\/section>/.exec(html)!;
    expect(section[1]).toBe('trace compressed');
    expect([...section[0].matchAll(/<span class="gap-label" style="left:([\d.]+)%">([^<]*)</g)].map((match) => match[2])).toEqual([
      '⋯ 1.0 s idle ⋯',
      '⋯ 29.8 s idle ⋯',
      '⋯ 31.2 s idle ⋯',
    ]);
    // Ticks say the true time where each stretch between gaps begins, and the trace's end.
    expect([...section[0].matchAll(/<span class="tick(?: end)?"[^>]*>([^<]*)</g)].map((match) => match[1])).toEqual([
      '0.0 ms',
      '1020.0 ms',
      '30860.0 ms',
      '62095.0 ms',
      '62145.0 ms',
    ]);
    const bars = [...section[0].matchAll(/data-span-id="(\w+)"[^]*?<span class="bar [^"]*" style="left:([\d.]+)%;width:([\d.]+)%"/g)].map((match) => ({
      id: match[1],
      left: Number(match[2]),
      width: Number(match[3]),
    }));
    const bands = [...section[0].matchAll(/<span class="gap" style="left:([\d.]+)%;width:([\d.]+)%"/g)]
      .slice(0, 3)
      .map((match) => [Number(match[1]), Number(match[2])]);
    expect(bands.map(([, width]) => width)).toEqual([6, 6, 6]);
    expect(bands[0][0]).toBeCloseTo(15 * (82 / 140), 2);
    // Each band sits between the spans before and after its gap; all of them together take 18% of the axis.
    const byId = new Map(bars.map((bar) => [bar.id, bar]));
    const before = ['d000000000000001', 'd000000000000003', 'd000000000000005'];
    const after = ['d000000000000003', 'd000000000000005', 'd000000000000006'];
    bands.forEach(([left, width], index) => {
      expect(byId.get(before[index])!.left + byId.get(before[index])!.width).toBeCloseTo(left, 2);
      expect(byId.get(after[index])!.left).toBeCloseTo(left + width, 2);
    });
    // The last receive's 50 ms take 50 of the 140 ms the spans cover, on 82% of the axis.
    expect(byId.get('d000000000000006')!.width).toBeCloseTo((50 / 140) * 82, 2);
    expect(section[0]).toContain('<td>start</td><td>+62095.0 ms · ');
    // A trace with no long gap keeps its linear scale.
    expect(html).toContain(`<section class="trace" id="trace-${linkedTrace.traceId}"`);
  });

  it('marks each receive of a retried record with its attempt', () => {
    const html = renderTracePage(fixtureSpans([retriedTrace]));

    expect([...html.matchAll(/data-span-id="(\w+)"[^>]*data-attempt="(\d)"/g)].map((match) => [match[1], match[2]])).toEqual([
      ['d000000000000003', '1'],
      ['d000000000000005', '2'],
      ['d000000000000006', '3'],
    ]);
    expect(html).toContain('<span class="span-meta">order-pipeline-offline-process-order · CONSUMER · attempt 2 of 3</span>');
    expect(html).toContain('<tr><td>attempt</td><td>attempt 3 of 3</td></tr>');
  });

  it("shows a failed span's exception event with its stack as text, and embeds the events as JSON can hold them", () => {
    const base = okTrace.spans[0].span;
    const stack = 'DeliveryError: no mail server\n    at send (functions/notify-customer.ts:20:13)\n    at <anonymous> </pre><script>alert(4)</script>';
    const failed = {
      ...base,
      status: 'ERROR' as const,
      statusMessage: 'no mail server',
      events: [{ name: 'exception', timeNs: base.startNs + 1_000_000n, attributes: { 'exception.type': 'DeliveryError', 'exception.stacktrace': stack } }],
    };

    const html = renderTracePage([failed]);

    expect(html).toContain('<h3>events</h3><ol class="events"><li><span class="mono">exception</span> at +1.0 ms');
    expect(html).toContain(
      '<pre class="stack">DeliveryError: no mail server\n    at send (functions/notify-customer.ts:20:13)\n    at &#60;anonymous&#62; &#60;/pre&#62;&#60;script&#62;alert(4)&#60;/script&#62;</pre>',
    );
    expect(html).toContain('<span class="mono">exception.type</span>');
    expect(tags(html).filter((tag) => tag.startsWith('<script'))).toEqual(['<script type="application/json" id="trace-spans">']);
    expect(embeddedSpans(html)[0].events).toEqual([
      { name: 'exception', timeUnixNano: String(base.startNs + 1_000_000n), attributes: failed.events[0].attributes },
    ]);
  });
});
