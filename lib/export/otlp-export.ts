/**
 * What exporting over OTLP/HTTP needs beyond the span processor: the exporter with its request size limits, SigV4
 * signing and the secret header reader, with the OTLP serializer. Packaged functions carry it as a file of its own
 * beside the handler (traced-lambda-export.js, built by scripts/serverless/export-file-plugin.cjs), evaluated at the
 * first export instead of at every cold start (otlp-export-file.ts).
 */
import type { TelemetryConfig } from '../config';
import { OtlpHttpSpanExporter } from './otlp-exporter';
import { secretHeaderLoader } from './secret-headers';

export function createOtlpExporter(config: TelemetryConfig): OtlpHttpSpanExporter {
  return new OtlpHttpSpanExporter({
    url: config.otlpTracesUrl,
    headers: config.otlpHeaders,
    timeoutMs: config.flushTimeoutMs,
    compression: config.otlpCompression,
    signing: config.otlpSigning,
    secretHeaders: config.otlpSecretHeader ? secretHeaderLoader(config.otlpSecretHeader, config.lambda.region) : undefined,
    concurrency: config.lambda.maxConcurrency,
  });
}
