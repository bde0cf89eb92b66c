import * as otlpExport from './otlp-export';

/**
 * The exporter's code (otlp-export.ts). Packaged builds replace this module with one whose function requires
 * traced-lambda-export.js, the same code bundled as a file of its own beside the handler, so that it is read and
 * evaluated at the first export, not at the cold start (scripts/serverless/export-file-plugin.cjs). Here, for tests
 * and `tsx`, it is the module itself.
 */
export function loadOtlpExport(): typeof otlpExport {
  return otlpExport;
}
