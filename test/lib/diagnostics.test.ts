import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { DiagLogger } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { traceInvokeHandler, withSpan } from '../../lib';
import { PartlyExportedError } from '../../lib/export/otlp-exporter';
import { readTelemetryConfig } from '../../lib/config';
import { startTelemetry } from '../../lib/telemetry';
import { lambdaContext } from '../../lib/testing';
import { closedPort } from '../closed-port';

// What reaches the function's log when tracing has trouble: the kit registers the diag logger itself (the
// console by default: test/runtime checks that path in a packaged function's real output); here a recording one.
const recording = () => {
  const lines: string[] = [];
  const record = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  const logger: DiagLogger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug'), verbose: record('verbose') };
  return { lines, logger };
};
const invocations = async (count: number) => {
  const handler = traceInvokeHandler(async () => 'done');
  for (let i = 0; i < count; i++) await expect(handler({}, lambdaContext())).resolves.toBe('done');
};
/** An exporter that answers each export with the next of `results` (the last one repeats). */
const answering = (...results: ExportResult['code'][]): SpanExporter => {
  let call = 0;
  return {
    export: (_spans, done) => done({ code: results[Math.min(call++, results.length - 1)], error: new Error('backend said no') }),
    shutdown: async () => undefined,
  };
};

describe("the function's log", () => {
  it('counts only the spans a split export lost, not the whole export', async () => {
    const { lines, logger } = recording();
    const partly: SpanExporter = {
      export: (_spans, done) => done({ code: ExportResultCode.FAILED, error: new PartlyExportedError('1 of 2 spans were not accepted', 1, new Error('503')) }),
      shutdown: async () => undefined,
    };
    startTelemetry(readTelemetryConfig({}), { logger, exporter: partly });
    const handler = traceInvokeHandler(() => withSpan('step', async () => 'done'));

    await handler({}, lambdaContext());

    expect(lines.filter((line) => line.includes('could not export'))).toEqual([
      'warn: traced-lambda: could not export 1 span(s): 1 of 2 spans were not accepted. Further failures are counted until an export succeeds.',
    ]);
  });

  it('names the span it drops when too many wait for a later export, and says why they waited', async () => {
    const { lines, logger } = recording();
    const telemetry = startTelemetry(readTelemetryConfig({}), { logger, exporter: answering(ExportResultCode.SUCCESS) });

    // Spans started outside any invocation and never ended: kept for a later export, 4096 at most.
    for (let i = 0; i <= 4096; i++) telemetry.tracer.startSpan(`background ${i}`);

    expect(lines.filter((line) => line.includes('traced-lambda'))).toEqual([
      'warn: traced-lambda: could not export 1 span(s): 4096 spans were kept for a later export (still running when their invocation ended, or started outside any invocation), and the oldest ("background 0", still running) was dropped. Further failures are counted until an export succeeds.',
    ]);
  });

  it('says once, not at every invocation, that spans cannot reach an unreachable endpoint', async () => {
    const { lines, logger } = recording();
    startTelemetry(readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}` }), { logger });

    await invocations(3);

    const failures = lines.filter((line) => line.includes('could not export'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/^warn: traced-lambda: could not export 1 span\(s\): .*ECONNREFUSED/);
  });

  it('says how many spans were lost once exports work again', async () => {
    const { lines, logger } = recording();
    startTelemetry(readTelemetryConfig({}), { logger, exporter: answering(ExportResultCode.FAILED, ExportResultCode.FAILED, ExportResultCode.SUCCESS) });

    await invocations(4);

    expect(lines.filter((line) => line.includes('traced-lambda'))).toEqual([
      'warn: traced-lambda: could not export 1 span(s): backend said no. Further failures are counted until an export succeeds.',
      'warn: traced-lambda: spans are exported again; 2 span(s) could not be exported before.',
    ]);
  });

  it('says once more when an outage comes back after a recovery', async () => {
    const { lines, logger } = recording();
    startTelemetry(readTelemetryConfig({}), {
      logger,
      exporter: answering(ExportResultCode.FAILED, ExportResultCode.SUCCESS, ExportResultCode.FAILED, ExportResultCode.FAILED),
    });

    await invocations(4);

    expect(lines.filter((line) => line.includes('could not export'))).toHaveLength(2);
  });

  it('reports a setting it cannot honour', () => {
    const { lines, logger } = recording();
    startTelemetry(readTelemetryConfig({ OTEL_TRACES_SAMPLER: 'sometimes' }), { logger, exporter: answering(ExportResultCode.SUCCESS) });

    expect(lines).toContainEqual(
      expect.stringMatching(/^warn: traced-lambda: OTEL_TRACES_SAMPLER="sometimes" is not one of .*; using "parentbased_always_on"\.$/),
    );
  });

  it('honours OTEL_LOG_LEVEL: error hides the warning, debug shows each failure', async () => {
    const quiet = recording();
    startTelemetry(readTelemetryConfig({ OTEL_LOG_LEVEL: 'error' }), { logger: quiet.logger, exporter: answering(ExportResultCode.FAILED) });
    await invocations(2);
    expect(quiet.lines.filter((line) => line.includes('traced-lambda'))).toEqual([]);

    const { lines, logger } = recording();
    startTelemetry(readTelemetryConfig({ OTEL_LOG_LEVEL: 'DEBUG' }), { logger, exporter: answering(ExportResultCode.FAILED) });
    await invocations(2);
    expect(lines.filter((line) => line.includes('could not export'))).toEqual([
      expect.stringMatching(/^warn: .*could not export 1 span\(s\)/),
      expect.stringMatching(/^debug: .*could not export 1 more span\(s\)/),
    ]);
  });

  it('reports an OTEL_LOG_LEVEL it does not know and keeps warnings on', () => {
    const { lines, logger } = recording();
    startTelemetry(readTelemetryConfig({ OTEL_LOG_LEVEL: 'loud' }), { logger, exporter: answering(ExportResultCode.SUCCESS) });

    expect(lines).toContainEqual('warn: traced-lambda: OTEL_LOG_LEVEL="loud" is not one of none, error, warn, info, debug, verbose, all; using "warn".');
  });
});
