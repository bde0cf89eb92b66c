import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { writeTracePage } from '../../scripts/offline/trace-page';
import { startTracePageServer, type TracePageServer } from '../../scripts/offline/trace-page-server';
import { openChromium, screenshotColours, shownSpans, type GuardedBrowser } from './browser';
import {
  failedTrace,
  fixtureSpans,
  fixtureTraces,
  HOSTILE_ATTRIBUTE,
  HOSTILE_NAME,
  linkedTrace,
  okTrace,
  retriedTrace,
  type FixtureTrace,
} from './trace-page-fixture';

// The trace page as a person sees it, in Chromium with no network: the page `npm start` writes (from spans
// shaped like its trace) and the one `npm run offline` serves. test/offline/npm-start.e2e.test.ts opens the page
// the real `npm start` wrote.
const ERROR_RED = 'rgb(220, 38, 38)';

// Opened by the first test that needs it, so that a missing Chromium fails each test with its message.
let opening: Promise<GuardedBrowser> | undefined;
let browser: GuardedBrowser;
let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'trace-page-'));
});

beforeEach(async () => {
  browser = await (opening ??= openChromium());
}, 60_000);

afterAll(async () => {
  const opened = await opening?.catch(() => undefined);
  await opened?.close();
  await rm(folder, { recursive: true, force: true });
});

/** The page shows the trace's spans in the fixture's order, each indented under its parent. */
async function expectTreeShown(trace: FixtureTrace) {
  const shown = await shownSpans(browser.page, trace.traceId);
  expect(shown.map((row) => [row.name, row.depth])).toEqual(trace.spans.map(({ span, depth }) => [span.name, depth]));
  shown.forEach((row, index) => {
    if (row.depth === 0) return;
    const parentIndex = shown.findIndex((other) => other.spanId === row.parentSpanId);
    expect(parentIndex, `${row.name}'s parent comes before it`).toBeGreaterThanOrEqual(0);
    expect(parentIndex).toBeLessThan(index);
    expect(shown[parentIndex].depth).toBe(row.depth - 1);
    expect(row.nameX, `${row.name} is indented under its parent`).toBeGreaterThan(shown[parentIndex].nameX + 8);
  });
  return shown;
}

describe('the trace page in Chromium', () => {
  it('the browser refuses, and the test sees, any request that leaves the machine', async () => {
    const probe = await browser.context.newPage();
    try {
      await probe.goto('about:blank');
      const outcome = await probe.evaluate(() =>
        fetch('http://192.0.2.1/probe').then(
          () => 'answered',
          () => 'refused',
        ),
      );
      expect(outcome).toBe('refused');
      expect(browser.offLoopback).toEqual(['http://192.0.2.1/probe']);
    } finally {
      await probe.close();
      // The probe's own refusal (and the console error it logs) is not the trace page's.
      browser.offLoopback.length = 0;
      browser.problems.length = 0;
    }
  });

  it('a written page: every trace, nested by parent, bars placed by time, errors in red, details on click, links', { timeout: 60_000 }, async () => {
    const file = join(folder, 'latest.html');
    await writeTracePage(file, fixtureSpans(), { title: 'npm start · trace fixture', madeAt: new Date() });
    const page = browser.page;

    await page.goto(pathToFileURL(file).href);

    await expect.poll(() => page.locator('h1').textContent()).toBe('npm start · trace fixture');
    expect(await page.locator('section.trace .trace-id').allTextContents()).toEqual([...fixtureTraces].reverse().map((trace) => trace.traceId));
    for (const trace of fixtureTraces) await expectTreeShown(trace);
    const allNames = await page.locator('.span-name').allTextContents();
    for (const span of fixtureSpans()) {
      expect(allNames.filter((name) => name === span.name)).toHaveLength(fixtureSpans().filter((other) => other.name === span.name).length);
    }

    // Bars: where each span starts and how long it lasts, on the trace's time line, where the 10 s the message
    // waited in the queue (no span covers them) are a band of 6% of the axis.
    const ok = await shownSpans(page, okTrace.traceId);
    const okStart = okTrace.spans[0].span.startNs;
    const [gapStart, gapEnd] = [okTrace.spans[0].span.endNs, okTrace.spans[4].span.startNs];
    const okEnd = okTrace.spans.reduce((end, { span }) => (span.endNs > end ? span.endNs : end), okStart);
    const okShown = Number(okEnd - okStart - (gapEnd - gapStart));
    ok.forEach((row, index) => {
      const { span } = okTrace.spans[index];
      const scale = (row.track.width * 0.94) / okShown;
      const startsAt =
        span.startNs < gapEnd
          ? Number(span.startNs - okStart) * scale
          : Number(gapStart - okStart) * scale + row.track.width * 0.06 + Number(span.startNs - gapEnd) * scale;
      expect(row.bar.x - row.track.x, `${row.name} starts where it started`).toBeCloseTo(startsAt, -0.5);
      expect(row.bar.width, `${row.name} lasts as long as it did`).toBeCloseTo(Math.max(2, Number(span.endNs - span.startNs) * scale), -0.5);
    });
    expect(await page.locator(`section.trace[data-trace-id="${okTrace.traceId}"] .scale .gap-label`).allTextContents()).toEqual(['⋯ 10.0 s idle ⋯']);
    expect(ok.map((row) => row.duration)).toEqual(['130.9 ms', '129.5 ms', '20.3 ms', '18.9 ms', '88.1 ms', '87.2 ms', '5.9 ms', '5.5 ms']);
    expect(ok[2].meta).toBe('order-pipeline-offline-create-order · SERVER · 202');
    expect(ok[4].meta).toBe('order-pipeline-offline-process-order · CONSUMER');
    expect(ok.every((row) => row.status === 'UNSET' && row.error === '' && row.barColour !== ERROR_RED)).toBe(true);

    // Errors: marked, in red, with their message, without opening anything.
    const failed = await shownSpans(page, failedTrace.traceId);
    const errors = failed.filter((row) => row.status === 'ERROR');
    expect(errors.map((row) => [row.name, row.error])).toEqual([
      ['process order-pipeline-offline-orders', 'ERROR notify-customer failed'],
      ['invoke order-pipeline-offline-notify-customer', 'ERROR notify-customer failed'],
      ['order-pipeline-offline-notify-customer', 'ERROR no mail server for ada@example.invalid'],
      ['send order confirmation', 'ERROR DeliveryError: no mail server for ada@example.invalid'],
    ]);
    expect(errors.every((row) => row.errorColour === ERROR_RED && row.barColour === ERROR_RED)).toBe(true);
    expect(await page.locator('.span-error').first().isVisible()).toBe(true);

    // A span's attributes appear when it is clicked.
    const confirmation = page.locator('#span-b000000000000006');
    const attributes = confirmation.locator('table.attributes');
    expect(await attributes.isVisible()).toBe(false);
    await confirmation.locator('summary').click();
    await expect.poll(() => attributes.isVisible()).toBe(true);
    expect(await attributes.locator('tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent)))).toEqual([
      ['error.type', 'DeliveryError'],
      ['order.id', 'o-2'],
    ]);
    expect(await confirmation.locator('table.resource').textContent()).toContain('order-pipeline-offline-notify-customer');
    expect(await confirmation.locator('table.facts').textContent()).toContain('ERROR DeliveryError: no mail server for ada@example.invalid');
    // Its exception event, with the stack as it was thrown.
    expect(await confirmation.locator('ol.events li').count()).toBe(1);
    expect(await confirmation.locator('pre.stack').isVisible()).toBe(true);
    expect(await confirmation.locator('pre.stack').textContent()).toBe(
      'DeliveryError: no mail server for ada@example.invalid\n    at deliver (functions/notify-customer.ts:22:15)',
    );

    // Markup in a name or an attribute is shown as text.
    const hostile = page.locator('#span-b000000000000007');
    expect(await hostile.locator('.span-name').textContent()).toBe(HOSTILE_NAME);
    await hostile.locator('summary').click();
    expect(await hostile.locator('table.attributes td').nth(1).textContent()).toBe(HOSTILE_ATTRIBUTE);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('script:not([type])').count()).toBe(0);

    // A link leads to the span it links to.
    const consumer = page.locator(`#span-${linkedTrace.spans[0].span.spanId}`);
    await consumer.locator('summary').click();
    const link = consumer.locator('ul.links a');
    expect(await link.textContent()).toBe(`trace ${okTrace.traceId} span a000000000000004`);
    expect(await consumer.locator('ul.links li').textContent()).toContain('(messaging.message.id=m-1)');
    await link.click();
    await expect.poll(() => new URL(page.url()).hash).toBe('#span-a000000000000004');

    const screenshot = screenshotColours(await page.screenshot({ fullPage: true, timeout: 15_000 }), [220, 38, 38]);
    expect(screenshot.width).toBe(1280);
    expect(screenshot.height).toBeGreaterThanOrEqual(800);
    expect(screenshot.height).toBeLessThan(20_000);
    expect(screenshot.distinct, 'not a blank image').toBeGreaterThan(50);
    expect(screenshot.near, 'error bars and messages drawn in red').toBeGreaterThan(200);

    expect(browser.offLoopback).toEqual([]);
    expect(browser.problems).toEqual([]);
  });

  it('a retried record: each wait a labelled break in the axis, the receives readable and marked', { timeout: 60_000 }, async () => {
    const file = join(folder, 'retried.html');
    await writeTracePage(file, fixtureSpans([retriedTrace]), { title: 'retried', madeAt: new Date() });
    const page = browser.page;

    await page.goto(pathToFileURL(file).href);

    const trace = page.locator(`section.trace[data-trace-id="${retriedTrace.traceId}"]`);
    const shown = await expectTreeShown(retriedTrace);
    const labels = await boxesOf(trace.locator('.scale .gap-label'));
    const bands = await boxesOf(trace.locator('.scale .gap'));
    expect(labels.map((label) => [label.text, label.width > 0 && label.height > 0])).toEqual([
      ['⋯ 1.0 s idle ⋯', true],
      ['⋯ 29.8 s idle ⋯', true],
      ['⋯ 31.2 s idle ⋯', true],
    ]);
    expect(
      bands.every((band) => band.backgroundImage.includes('gradient')),
      'each band hatched',
    ).toBe(true);
    labels.forEach((label, index) => {
      expect(label.left + label.width / 2, `${label.text} is over its band`).toBeCloseTo((bands[index].left + bands[index].right) / 2, -0.5);
      if (index > 0) expect(label.left, `${label.text} does not cover the label before it`).toBeGreaterThan(labels[index - 1].right);
    });
    // Each band lies between the bar that ends before its gap and the one that starts after it.
    const bar = (spanId: string) => shown.find((row) => row.spanId === spanId)!.bar;
    const sides = [
      ['d000000000000001', 'd000000000000003'],
      ['d000000000000003', 'd000000000000005'],
      ['d000000000000005', 'd000000000000006'],
    ];
    sides.forEach(([before, after], index) => {
      expect(bar(before).x + bar(before).width).toBeCloseTo(bands[index].left, -0.5);
      expect(bar(after).x).toBeCloseTo(bands[index].right, -0.5);
    });
    // Every receive is drawn wide enough to see and click (to scale, the 35 ms one would be under a pixel).
    const receives = shown.filter((row) => row.meta.includes('CONSUMER'));
    expect(receives.map((row) => row.meta)).toEqual([1, 2, 3].map((attempt) => `order-pipeline-offline-process-order · CONSUMER · attempt ${attempt} of 3`));
    expect(receives.every((row) => row.bar.width > row.track.width * 0.15)).toBe(true);
    await page.locator('#span-d000000000000006 .bar').click();
    await expect.poll(() => page.locator('#span-d000000000000006 table.facts').textContent()).toContain('+62095.0 ms');

    expect(browser.offLoopback).toEqual([]);
    expect(browser.problems).toEqual([]);
  });

  it('served live: spans that arrive after the page opened appear, an opened span stays open', { timeout: 60_000 }, async () => {
    const received: ReceivedSpan[] = okTrace.spans.map(({ span }) => span);
    let server: TracePageServer | undefined = await startTracePageServer(() => received, { title: 'npm run offline · traces received' });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = browser.page;
      await page.goto(server.url);
      await expectTreeShown(okTrace);
      await page.locator('#span-a000000000000004 summary').click();
      expect(await page.locator('#span-a000000000000004 table.attributes').textContent()).toContain('order-pipeline-offline-orders');

      received.push(...fixtureSpans([failedTrace]));

      await page.locator(`section.trace[data-trace-id="${failedTrace.traceId}"]`).waitFor({ timeout: 10_000 });
      await expectTreeShown(failedTrace);
      expect(await page.locator('#summary').textContent()).toBe('2 traces · 15 spans');
      expect(await page.locator('#span-a000000000000004').getAttribute('open')).toBe('');
      expect(await page.locator('#span-a000000000000004 table.attributes').isVisible()).toBe(true);

      const api = (await (await fetch(`${server.url}api/traces`, { signal: AbortSignal.timeout(5000) })).json()) as {
        spanCount: number;
        spans: { startTimeUnixNano: string }[];
      };
      expect(api.spanCount).toBe(15);
      expect(api.spans[0].startTimeUnixNano).toBe(String(okTrace.spans[0].span.startNs));
      expect(await statusFor(server.port, 'evil.example')).toBe(421);
      expect(await statusFor(server.port, `127.0.0.1:${server.port}`, '/nothing')).toBe(404);

      await server.close();
      server = undefined;
      await expect.poll(() => page.locator('#live-status').textContent(), { timeout: 10_000 }).toContain('not connected');

      expect(browser.offLoopback).toEqual([]);
      expect(browser.problems.filter((problem) => !problem.includes('Failed to fetch') && !problem.includes('ERR_CONNECTION_REFUSED'))).toEqual([]);
    } finally {
      await server?.close();
    }
  });
});

/** Where each element is drawn, its text and its background image. */
function boxesOf(elements: Locator) {
  return elements.evaluateAll((found) =>
    found.map((element) => {
      const { left, right, width, height } = element.getBoundingClientRect();
      return {
        text: element.textContent,
        left,
        right,
        width,
        height,
        backgroundImage: element.ownerDocument.defaultView.getComputedStyle(element).backgroundImage,
      };
    }),
  );
}

/** The status the page server answers a request with this Host header with. */
function statusFor(port: number, host: string, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = request({ host: '127.0.0.1', port, path, headers: { host }, timeout: 5000 }, (response) => {
      response.resume();
      resolve(response.statusCode!);
    });
    call.on('timeout', () => call.destroy(new Error('no answer within 5 s')));
    call.on('error', reject);
    call.end();
  });
}
