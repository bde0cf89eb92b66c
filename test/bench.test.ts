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
  it('measures ours against the bare handler, the SDK floor and every peer side by side and writes the tables', { timeout: 300_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
    const out = join(dir, 'results.md');

    await promisify(execFile)(process.execPath, [require.resolve('tsx/cli'), 'bench/run.ts', '--quick', '--out', out], {
      cwd: ROOT,
      timeout: 290_000,
    });

    const text = await readFile(out, 'utf8');
    expect(text).toContain('QUICK RUN');
    const [report, runtimeReport = ''] = text.split("## Under AWS's runtime interface client");
    const [figures, ratios = ''] = report.split('### What each adds over bare, against ours');
    const table = (part: string) => {
      const lines = part.split('\n').filter((line) => line.startsWith('| '));
      const cells = (line: string) => line.slice(2, -2).split(' | ');
      const header = cells(lines[0]);
      const rows = lines.slice(2).map(cells);
      // No row shifted against its header.
      for (const row of rows) expect(row).toHaveLength(header.length);
      return { header, rows, cell: (row: string[], column: string) => row[header.indexOf(column)] };
    };
    const number = /^-?\d+(\.\d+)?/;

    const main = table(figures);
    expect(main.header).toEqual([
      'figure',
      'bare',
      'ours',
      'SDK floor (kit set-up)',
      'stock wrapper',
      'contrib, minimal',
      'OTel layer, as it runs',
      'Powertools Tracer',
      'target',
      'ours',
    ]);
    expect(main.rows.map((row) => row[0])).toEqual([
      'cold: module init, ms since process start (ours as deployed, source maps on)',
      'cold: first invocation incl. its export, ms since process start (ours as deployed)',
      expect.stringMatching(/^cold: module init without source maps \(in brackets what the \d+\.\d KiB map adds\), ms$/),
      expect.stringMatching(/^cold: first invocation without source maps \(in brackets what the \d+\.\d KiB map adds\), ms$/),
      'bundle, minified KiB (AWS SDK external; ours: the largest function, its own file and its kit file)',
      'per invocation, API Gateway, µs',
      'per invocation, SQS ×10 records, µs',
      'invocation with its export to a loopback receiver, ms p50 / p99',
      'CPU per invocation, export to loopback included, µs',
      'response time, receiver 20 ms away, export in the invocation, ms p50 / p99',
      'memory over 2,000 invocations: peak RSS, heap growth after GC (10% → end), MB',
      'timeout guard, added per invocation (on − off, paired rounds), µs',
    ]);
    const peers = ['bare', 'ours', 'stock wrapper', 'contrib, minimal', 'OTel layer, as it runs', 'Powertools Tracer'];
    // Every peer measured in every row but the source-map and timeout-guard ones (ours only); the floor in the
    // per-invocation rows.
    for (const row of main.rows.filter((_, index) => index !== 2 && index !== 3 && index !== 11)) {
      for (const column of peers) expect(main.cell(row, column), `${row[0]}: ${column}`).toMatch(number);
    }
    for (const row of main.rows.slice(5, 7)) expect(main.cell(row, 'SDK floor (kit set-up)')).toMatch(/^\d+\.\d+ \(.*\) \+\d+\.\d+$/);
    for (const row of main.rows.slice(2, 4)) expect(main.cell(row, 'ours')).toMatch(/ \(maps: [+-]\d+\.\d\)$/);
    // The targets the kit is held to, each with a verdict.
    for (const index of [0, 1, 4, 6, 7, 8, 11]) expect(main.rows[index].at(-1)).toMatch(/^(met|missed)/);
    // The guard's cost: on against off, for both kinds of invocation, each beside the off runs' own spread.
    expect(main.cell(main.rows[11], 'ours')).toMatch(/^API [+-]\d+\.\d\d \(off's own spread \d+\.\d\d\), SQS ×10 [+-]\d+\.\d\d \(spread \d+\.\d\d\)$/);

    // Each peer's added cost against ours, in every row that has both.
    const ratio = table(ratios);
    expect(ratio.header.slice(0, 2)).toEqual(['figure', 'ours added']);
    expect(ratio.rows.length).toBeGreaterThanOrEqual(9);
    for (const row of ratio.rows) {
      for (const column of ratio.header.slice(2, -1)) expect(ratio.cell(row, column)).toMatch(/^-?\d+(\.\d+)? \((-?\d+\.\d×|∞)\)$/);
    }

    // The same handler files under the runtime interface client: after-response vs in-invocation export, CPU, loss.
    const runtime = table(runtimeReport);
    expect(runtime.rows.map((row) => row[0])).toEqual([
      'cold: process start to first response (runtime init, preload, handler load, first invocation), ms',
      'response time, receiver 20 ms away, ms p50 / p99',
      'sandbox busy until runtime and extensions wait on /next, ms p50 / p99',
      'dense traffic (an invocation every 20 ms, receiver 20 ms away): sandbox busy past the response, ms p50 / p99',
      'CPU per invocation, export to loopback included, µs',
      'spans received per invocation (Powertools: segments at the daemon)',
      'spans lost over 200 invocations and a shutdown (SIGTERM)',
      'Lambda Managed Instances (2 workers × 8 in flight, 64 interleaved invocations, each on its own trace, then SIGTERM): response ms p50, receiver answering at once / 200 ms away',
      'timed out (1000 ms timeout, killed at the deadline): guard firing → its export answered, receiver 20 ms away, ms p50 / max',
    ]);
    const runtimeColumns = runtime.header.slice(1, -3);
    expect(runtimeColumns).toEqual([
      'bare',
      'ours, nothing exported',
      'ours (after response)',
      'ours (in invocation)',
      'stock wrapper',
      'contrib, minimal',
      'OTel layer, as it runs',
      'Powertools Tracer',
    ]);
    for (const row of [...runtime.rows.slice(0, 3), runtime.rows[4]]) {
      for (const column of runtimeColumns) expect(runtime.cell(row, column)).toMatch(number);
    }
    // Dense traffic: ours shares its exports (a figure), the others are not measured there.
    expect(runtime.cell(runtime.rows[3], 'ours (after response)')).toMatch(number);
    // One span per invocation from every variant that traces under the runtime client (contrib set up with
    // --require cannot: the client imports the handler), none with the exporter off; every one of ours arrived,
    // the last ones through the shutdown.
    const spans = runtime.rows[5];
    expect(runtimeColumns.map((column) => runtime.cell(spans, column))).toEqual(['0.00', '0.00', '1.00', '1.00', '1.00', '0.00', '1.00', '1.00']);
    expect(runtime.cell(runtime.rows[6], 'ours (after response)')).toBe('0 of 200');
    // None lost in the other export modes either.
    expect(runtime.rows[6].at(-3)).toBe('batched 0 of 200 · one export per invocation 0 of 200 · in invocation 0 of 200');
    // Managed Instances: both receivers measured; every span on its own invocation's trace, none lost through SIGTERM,
    // in the background and exporting inside each invocation alike.
    const managed = runtime.rows[7];
    expect(runtime.cell(managed, 'ours (after response)')).toMatch(/^\d+\.\d \/ \d+\.\d$/);
    expect(managed.at(-3)).toMatch(
      /^ours \(in the background\): 0 mismatched, 0 of 128 lost · exporting inside each invocation \(TRACED_LAMBDA_EXPORT_STRATEGY=invocation\): p50 \d+\.\d \/ \d+\.\d, 0 mismatched, 0 of 128 lost$/,
    );
    // Every timed-out invocation's spans answered before the deadline, cold and warm.
    expect(runtime.cell(runtime.rows[8], 'ours (after response)')).toMatch(/^cold \d+\.\d \/ \d+\.\d, warm \d+\.\d \/ \d+\.\d$/);
    expect(runtime.rows[8].at(-3)).toMatch(/^0 of 4 timed-out invocations/);
  });
});
