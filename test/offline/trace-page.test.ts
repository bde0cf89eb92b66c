import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { escapeHtml, renderTracePage, spansToJson } from '../../scripts/offline/trace-page';
import { fixtureSpans, fixtureTraces, HOSTILE_ATTRIBUTE, HOSTILE_NAME, okTrace } from './trace-page-fixture';

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

    expect([...html.matchAll(/<section class="trace" id="trace-([0-9a-f]+)"/g)].map((match) => match[1])).toEqual(
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
