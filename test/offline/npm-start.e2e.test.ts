import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver } from '../../scripts/offline/otlp-receiver';
import { freePorts, functionName, offlineService } from '../../scripts/offline/stack';
import { ORDER_FLOW } from './order-flow';
import { isConnectedTrace, spansOfTrace } from '../../scripts/offline/trace-tree';
import { openChromium, screenshotColours, shownSpans } from './browser';

// The README's main command, as a newcomer runs it (on free ports, so that a running `npm run offline` is left alone).
const ROOT = resolve(__dirname, '../..');
const BUILD_FOLDER = '.esbuild-npm-start-test';
// The deployed names in span names, as serverless.yml gives them offline.
const ORDERS = offlineService().queue('OrdersQueue').name;
const NOTIFY = functionName('notify-customer');

afterAll(async () => {
  await rm(join(ROOT, BUILD_FOLDER), { recursive: true, force: true });
});

describe('npm start', () => {
  it('prints one trace across the three functions, writes it as a waterfall page and exits 0', { timeout: 200_000 }, async () => {
    const [http, lambda, sqs, otlp] = await freePorts(4);
    const env = {
      ...process.env,
      HTTP_PORT: String(http),
      LAMBDA_PORT: String(lambda),
      SQS_PORT: String(sqs),
      OTLP_RECEIVER_PORT: String(otlp),
      ESBUILD_WORK_FOLDER: BUILD_FOLDER,
      OTEL_EXPORTER_OTLP_ENDPOINT: '',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
    };

    const { stdout } = await promisify(execFile)(process.execPath, [require.resolve('tsx/cli'), 'scripts/start.ts'], {
      cwd: ROOT,
      env,
      timeout: 140_000,
    });

    const traceLine = stdout.split('\n').find((line) => line.startsWith('trace '));
    expect(traceLine).toMatch(/^trace [0-9a-f]{32} · 8 spans · 4 services · /);
    const tree = stdout.slice(stdout.indexOf(traceLine!));
    for (const [span, kind, fn] of [
      ['npm start', 'INTERNAL', 'npm-start'],
      ['POST /orders', 'SERVER', 'create-order'],
      [`send ${ORDERS}`, 'PRODUCER', 'create-order'],
      [`process ${ORDERS}`, 'CONSUMER', 'process-order'],
      [`invoke ${NOTIFY}`, 'CLIENT', 'process-order'],
      [NOTIFY, 'SERVER', 'notify-customer'],
      ['send order confirmation', 'INTERNAL', 'notify-customer'],
    ]) {
      expect(tree).toMatch(new RegExp(`${span}\\s+${kind}\\s+${fn}\\s`));
    }
    expect(stdout).toContain('One trace across 3 functions');
    // The queue hop it measured: the batching window (1 s, which a lone record waits out) and the consumer's start,
    // not the seconds a batch filled by long polls took (README gives the figures measured).
    const hop = new RegExp(`Queue hop send ${ORDERS}: (\\d+\\.\\d\\d) s from send to process\\.`).exec(stdout);
    expect(hop, stdout).not.toBeNull();
    expect(Number(hop![1])).toBeGreaterThanOrEqual(0.9);
    expect(Number(hop![1])).toBeLessThan(5);
    expect(stdout).toContain(`POST http://127.0.0.1:${http}/orders`);

    // Its last line: the page it wrote, which must show in a browser what the tree shows.
    const pageUrl = stdout.trimEnd().split('\n').at(-1)!.trim();
    expect(pageUrl).toBe(pathToFileURL(join(ROOT, '.traces', 'latest.html')).href);
    const traceId = traceLine!.split(' ')[1];
    const treeRows = tree
      .split('\n')
      .slice(2)
      .map((line) => /^([ │]*(?:[└├]─ )?)(.+?)\s{2,}(?:INTERNAL|SERVER|CLIENT|PRODUCER|CONSUMER)\s+\S+\s+\+[\d.]+ ms\s+([\d.]+ ms)/.exec(line))
      .filter((match) => match !== null)
      .map(([, lead, name, duration]) => [name, lead.length / 3, duration]);
    expect(treeRows).toHaveLength(8);
    const browser = await openChromium();
    try {
      const page = browser.page;
      await page.goto(pageUrl);
      expect(await page.locator(`section.trace[data-trace-id="${traceId}"] .trace-id`).textContent()).toBe(traceId);
      const shown = await shownSpans(page, traceId);
      expect(shown.map((row) => [row.name, row.depth, row.duration])).toEqual(treeRows);
      expect(shown.filter((row) => row.status === 'ERROR')).toEqual([]);
      const server = page.locator(`section.trace[data-trace-id="${traceId}"] details.span`).nth(2);
      expect(await server.locator('.span-meta').textContent()).toBe(`${functionName('create-order')} · SERVER · 202`);
      await server.locator('summary').click();
      await expect.poll(() => server.locator('table.attributes').isVisible()).toBe(true);
      expect(await server.locator('table.attributes').textContent()).toContain('http.response.status_code202');
      const screenshot = screenshotColours(await page.screenshot({ fullPage: true, timeout: 15_000 }), [255, 255, 255]);
      expect(screenshot.width).toBe(1280);
      expect(screenshot.height).toBeGreaterThanOrEqual(800);
      expect(screenshot.distinct, 'not a blank image').toBeGreaterThan(50);
      expect(browser.offLoopback).toEqual([]);
      expect(browser.problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('with OTEL_EXPORTER_OTLP_ENDPOINT set, stops only once the whole trace has been sent there', { timeout: 150_000 }, async () => {
    const backend = await startOtlpReceiver(0);
    try {
      const [http, lambda, sqs] = await freePorts(3);
      const env = {
        ...process.env,
        HTTP_PORT: String(http),
        LAMBDA_PORT: String(lambda),
        SQS_PORT: String(sqs),
        ESBUILD_WORK_FOLDER: BUILD_FOLDER,
        OTEL_EXPORTER_OTLP_ENDPOINT: backend.endpoint,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
      };

      const { stdout } = await promisify(execFile)(process.execPath, [require.resolve('tsx/cli'), 'scripts/start.ts'], { cwd: ROOT, env, timeout: 140_000 });

      const traceId = /look up trace ([0-9a-f]{32}) there/.exec(stdout)?.[1];
      expect(traceId, stdout).toBeDefined();
      // Read as soon as npm start has exited: nothing is still on its way.
      const trace = spansOfTrace(backend.spans(), traceId!);
      expect(trace).toHaveLength(8);
      expect(isConnectedTrace(trace, ORDER_FLOW)).toBe(true);
    } finally {
      await backend.close();
    }
  });
});
