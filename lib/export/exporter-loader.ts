import { diag } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { TelemetryConfig } from '../config';
import { loadOtlpExport } from './otlp-export-file';

/** The file packaged functions carry the exporter's code in, beside the handler (scripts/serverless/export-file-plugin.cjs). */
export const EXPORT_FILE = 'traced-lambda-export.js';

/**
 * The OTLP/HTTP exporter, its code loaded now (at the first export). When that code cannot be loaded (the file
 * missing from a package built some other way), tracing goes on without exporting: one error line in the
 * function's log says why, every export fails with that reason, and no invocation is affected.
 */
export function createOtlpExporter(config: TelemetryConfig): SpanExporter {
  try {
    return loadOtlpExport().createOtlpExporter(config);
  } catch (error) {
    const reason = `the exporter's code (${EXPORT_FILE} beside the handler) could not be loaded, so spans are dropped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
    diag.error(`traced-lambda: ${reason}`);
    const failure = new Error(reason);
    return {
      export: (_spans, resultCallback) => resultCallback({ code: ExportResultCode.FAILED, error: failure }),
      shutdown: () => Promise.resolve(),
    };
  }
}
