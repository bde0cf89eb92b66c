import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver } from '../../scripts/offline/otlp-receiver';
import { freePorts } from '../../scripts/offline/stack';
import { isConnectedTrace, spansOfTrace } from '../../scripts/offline/trace-tree';

// The README's main command, as a newcomer runs it (on free ports, so that a running `npm run offline` is left alone).
const ROOT = resolve(__dirname, '../..');
const BUILD_FOLDER = '.esbuild-npm-start-test';

afterAll(async () => {
  await rm(join(ROOT, BUILD_FOLDER), { recursive: true, force: true });
});

describe('npm start', () => {
  it('prints one trace across the three functions and exits 0', { timeout: 150_000 }, async () => {
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
      ['send order-pipeline-offline-orders', 'PRODUCER', 'create-order'],
      ['process order-pipeline-offline-orders', 'CONSUMER', 'process-order'],
      ['invoke order-pipeline-offline-notify-customer', 'CLIENT', 'process-order'],
      ['order-pipeline-offline-notify-customer', 'SERVER', 'notify-customer'],
      ['send order confirmation', 'INTERNAL', 'notify-customer'],
    ]) {
      expect(tree).toMatch(new RegExp(`${span}\\s+${kind}\\s+${fn}\\s`));
    }
    expect(stdout).toContain('One trace across 3 functions');
    expect(stdout).toContain(`POST http://127.0.0.1:${http}/orders`);
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
      expect(isConnectedTrace(trace, ['create-order', 'process-order', 'notify-customer'].map((fn) => `order-pipeline-offline-${fn}`))).toBe(true);
    } finally {
      await backend.close();
    }
  });
});
