import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// A smoke run of `npm run bench` (a few iterations): the script builds, measures and reports. The figures
// themselves live in bench/results.md from a full run; nothing here is timed.
const ROOT = resolve(__dirname, '..');
let dir: string | undefined;

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm run bench --quick', () => {
  it('measures bare, ours and contrib side by side and writes the table', { timeout: 120_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
    const out = join(dir, 'results.md');

    await promisify(execFile)(process.execPath, [require.resolve('tsx/cli'), 'bench/run.ts', '--quick', '--out', out], {
      cwd: ROOT,
      timeout: 110_000,
    });

    const [report, runtimeReport = ''] = (await readFile(out, 'utf8')).split("## Under AWS's runtime interface client");
    const tableRows = (text: string) => text.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| figure') && !line.startsWith('| ---'));
    const rows = tableRows(report);
    expect(rows.map((row) => row.split(' | ')[0].slice(2))).toEqual([
      'cold: module init, ms since process start',
      'cold: first invocation incl. OTLP flush, ms',
      expect.stringMatching(/^cold: module init with source maps on \(\d+\.\d KiB map\), ms$/),
      expect.stringMatching(/^cold: first invocation with source maps on \(\d+\.\d KiB map\), ms$/),
      'bundle, minified KiB (AWS SDK external)',
      'per invocation, API Gateway, µs',
      'per invocation, SQS ×10 records, µs',
      'invocation with OTLP/HTTP flush to loopback, ms p50 / p99',
      'CPU per invocation, OTLP/HTTP export to loopback included, µs',
      'response time, receiver 20 ms away, ms p50 / p99',
      'memory over 2,000 invocations (heap: 10% → end, after GC)',
    ]);
    // Every measured cell holds a number for each variant (source maps: ours only, and what the maps add).
    for (const row of [...rows.slice(0, 2), ...rows.slice(4, 7)]) {
      const [, bare, ours, contrib] = row.split(' | ');
      for (const cell of [bare, ours, contrib]) expect(cell).toMatch(/^\d+(\.\d+)?/);
    }
    for (const row of rows.slice(2, 4)) expect(row.split(' | ')[4]).toMatch(/^\d+\.\d \(maps: [+-]\d+\.\d\)$/);
    // Ratios against bare and contrib, and no row shifted against the header.
    const header = report.split('\n').find((line) => line.startsWith('| figure'))!.split(' | ');
    expect(header).toEqual(expect.arrayContaining(['ours/bare', 'ours/contrib']));
    for (const row of rows) expect(row.split(' | ')).toHaveLength(header.length);
    expect(report).toContain('QUICK RUN');

    // The same handler files under the runtime interface client: after-response vs in-invocation export, CPU, loss.
    const runtimeRows = tableRows(runtimeReport);
    expect(runtimeRows.map((row) => row.split(' | ')[0].slice(2))).toEqual([
      'cold: process start to first response (runtime init, preload, handler load, first invocation), ms',
      'response time, receiver 20 ms away, ms p50 / p99',
      'sandbox busy until runtime and extensions wait on /next, ms p50 / p99',
      'CPU per invocation, export to loopback included, µs',
      'spans received per invocation',
      'spans lost over 200 invocations and a shutdown (SIGTERM)',
    ]);
    for (const row of runtimeRows.slice(0, 4)) {
      for (const cell of row.split(' | ').slice(1, 6)) expect(cell).toMatch(/^\d+(\.\d+)?/);
    }
    // Ours exports one span per invocation (none with the exporter off), and every one of them arrived, the last
    // ones through the shutdown.
    expect(runtimeRows[4].split(' | ').slice(2, 5)).toEqual(['0.00', '1.00', '1.00']);
    expect(runtimeRows[5].split(' | ')[3]).toBe('0 of 200');
  });
});
