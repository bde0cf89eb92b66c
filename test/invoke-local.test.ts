import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// The README's `serverless invoke local` command: notify-customer continues the trace passed in its client context.
const ROOT = resolve(__dirname, '..');
const WORK_FOLDER = '.esbuild-invoke-local-test';

afterAll(async () => {
  await rm(join(ROOT, WORK_FOLDER), { recursive: true, force: true });
});

describe('serverless invoke local', () => {
  it('continues the trace given in --context', { timeout: 120_000 }, async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentSpanId = '00f067aa0ba902b7';
    const context = { clientContext: { custom: { traceparent: `00-${traceId}-${parentSpanId}-01` } } };

    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        require.resolve('osls/bin/serverless.js'),
        'invoke',
        'local',
        '-f',
        'notify-customer',
        '--stage',
        'offline',
        '--data',
        JSON.stringify({ orderId: 'o-local', customerEmail: 'ada@example.com', itemCount: 1 }),
        '--context',
        JSON.stringify(context),
      ],
      { cwd: ROOT, env: { ...process.env, OTEL_TRACES_EXPORTER: 'console', ESBUILD_WORK_FOLDER: WORK_FOLDER }, timeout: 110_000 },
    );

    // The console exporter prints each span; the function's result is printed last.
    expect(stdout).toContain(`traceId: '${traceId}'`);
    expect(stdout).toMatch(new RegExp(`parentSpanContext: \\{\\s*traceId: '${traceId}',\\s*spanId: '${parentSpanId}'`));
    expect(stdout).toContain(`"orderId": "o-local"`);
    expect(stdout).toContain(`"delivered": true`);
  });
});
