/**
 * Telemetry configuration, read once from the standard `OTEL_*` variables and passed down.
 * Nothing else in lib/ reads `process.env`.
 */
import { DiagLogLevel } from '@opentelemetry/api';
import { diagLogLevelFromString } from '@opentelemetry/core';
import { xraySigningRegion, type SigningConfig } from './sigv4';

const TRACES_EXPORTERS = ['otlp', 'console', 'none'] as const;
export type TracesExporterName = (typeof TRACES_EXPORTERS)[number];

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];
export interface SamplerConfig {
  name: SamplerName;
  /** For the `traceidratio` samplers: the share of new traces kept, 0 to 1. */
  ratio: number;
}

export interface TelemetryConfig {
  serviceName: string;
  exporter: TracesExporterName;
  /** Full URL of the OTLP/HTTP traces endpoint (…/v1/traces). */
  otlpTracesUrl: string;
  sampler: SamplerConfig;
  otlpHeaders: Record<string, string>;
  /** OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION: `gzip` or `none`. */
  otlpCompression: 'gzip' | 'none';
  /**
   * SigV4 signing, set when the traces endpoint is CloudWatch's (`https://xray.<region>.amazonaws.com`): signed
   * for `xray` in that region with the function's role credentials from the environment.
   */
  otlpSigning?: SigningConfig;
  /** Upper bound for one end-of-invocation flush; a slow backend must not hold the function. */
  flushTimeoutMs: number;
  /** What reaches the function's log through `diag` (OTEL_LOG_LEVEL; warnings and errors by default). */
  logLevel: DiagLogLevel;
  /** Problems found while reading the variables, reported once through `diag` by the caller. */
  warnings: string[];
  lambda: LambdaEnvironment;
}

/** What the Lambda runtime tells a process about itself (empty values outside Lambda). */
export interface LambdaEnvironment {
  functionName?: string;
  functionVersion?: string;
  region?: string;
  memoryMb?: number;
  logStreamName?: string;
  initializationType?: string;
}

const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';
const DEFAULT_FLUSH_TIMEOUT_MS = 2000;

type Env = Record<string, string | undefined>;

export function readTelemetryConfig(env: Env): TelemetryConfig {
  const warnings: string[] = [];
  const lambda = readLambdaEnvironment(env);
  const exporter = readExporter(env.OTEL_TRACES_EXPORTER, warnings);
  const otlpTracesUrl = readOtlpTracesUrl(env, warnings);
  return {
    serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ?? lambda.functionName ?? 'unknown_service',
    exporter,
    otlpTracesUrl,
    otlpCompression: readCompression(env, warnings),
    otlpSigning: exporter === 'otlp' ? readSigning(otlpTracesUrl, env, warnings) : undefined,
    sampler: readSampler(env, warnings),
    otlpHeaders: readOtlpHeaders(nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) ?? env.OTEL_EXPORTER_OTLP_HEADERS),
    flushTimeoutMs: readPositiveInt(
      nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) ?? env.OTEL_EXPORTER_OTLP_TIMEOUT,
      DEFAULT_FLUSH_TIMEOUT_MS,
    ),
    logLevel: readLogLevel(env.OTEL_LOG_LEVEL, warnings),
    warnings,
    lambda,
  };
}

function readCompression(env: Env, warnings: string[]): 'gzip' | 'none' {
  const value = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_COMPRESSION);
  if (value === undefined || value.toLowerCase() === 'none') return 'none';
  if (value.toLowerCase() === 'gzip') return 'gzip';
  warnings.push(`OTEL_EXPORTER_OTLP_COMPRESSION="${value}" is not gzip or none; sending uncompressed.`);
  return 'none';
}

/** CloudWatch's OTLP endpoint takes SigV4-signed requests only: sign with the role credentials Lambda provides. */
function readSigning(url: string, env: Env, warnings: string[]): SigningConfig | undefined {
  const region = xraySigningRegion(url);
  if (region === undefined) return undefined;
  const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (!accessKeyId || !secretAccessKey) {
    warnings.push(`${url} needs SigV4-signed requests, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set: spans cannot be exported.`);
    return { service: 'xray', region, credentials: undefined };
  }
  return { service: 'xray', region, credentials: { accessKeyId, secretAccessKey, sessionToken: nonEmpty(env.AWS_SESSION_TOKEN) } };
}

const LOG_LEVELS = ['none', 'error', 'warn', 'info', 'debug', 'verbose', 'all'];

/** `OTEL_LOG_LEVEL`, the SDK's names for the diag levels; warnings (a failed export, a bad setting) by default. */
function readLogLevel(value: string | undefined, warnings: string[]): DiagLogLevel {
  const name = nonEmpty(value)?.toLowerCase();
  if (name === undefined) return DiagLogLevel.WARN;
  if (LOG_LEVELS.includes(name)) return diagLogLevelFromString(name) ?? DiagLogLevel.WARN;
  warnings.push(`OTEL_LOG_LEVEL="${value}" is not one of ${LOG_LEVELS.join(', ')}; using "warn".`);
  return DiagLogLevel.WARN;
}

function readLambdaEnvironment(env: Env): LambdaEnvironment {
  const memory = Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  return {
    functionName: nonEmpty(env.AWS_LAMBDA_FUNCTION_NAME),
    functionVersion: nonEmpty(env.AWS_LAMBDA_FUNCTION_VERSION),
    region: nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION),
    memoryMb: Number.isFinite(memory) && memory > 0 ? memory : undefined,
    logStreamName: nonEmpty(env.AWS_LAMBDA_LOG_STREAM_NAME),
    initializationType: nonEmpty(env.AWS_LAMBDA_INITIALIZATION_TYPE),
  };
}

function readExporter(value: string | undefined, warnings: string[]): TracesExporterName {
  // The spec allows a comma-separated list; one exporter per function is what we support.
  const names = (value ?? '').split(',').map((name) => name.trim().toLowerCase()).filter(Boolean);
  if (names.length === 0) return 'otlp';
  const [first] = names;
  if (names.length > 1) warnings.push(`OTEL_TRACES_EXPORTER lists several exporters; using "${first}" only.`);
  if ((TRACES_EXPORTERS as readonly string[]).includes(first)) return first as TracesExporterName;
  warnings.push(`OTEL_TRACES_EXPORTER="${value}" is not one of ${TRACES_EXPORTERS.join(', ')}; using "otlp".`);
  return 'otlp';
}

/** `OTEL_TRACES_SAMPLER` and its argument, as the SDK specification defines them. */
function readSampler(env: Env, warnings: string[]): SamplerConfig {
  const name = (nonEmpty(env.OTEL_TRACES_SAMPLER) ?? 'parentbased_always_on').toLowerCase();
  if (!(SAMPLERS as readonly string[]).includes(name)) {
    warnings.push(`OTEL_TRACES_SAMPLER="${name}" is not one of ${SAMPLERS.join(', ')}; using "parentbased_always_on".`);
    return { name: 'parentbased_always_on', ratio: 1 };
  }
  const arg = nonEmpty(env.OTEL_TRACES_SAMPLER_ARG);
  const ratio = arg === undefined ? 1 : Number(arg);
  if (name.endsWith('traceidratio') && !(ratio >= 0 && ratio <= 1)) {
    warnings.push(`OTEL_TRACES_SAMPLER_ARG="${arg}" is not a ratio from 0 to 1; using 1.`);
    return { name: name as SamplerName, ratio: 1 };
  }
  return { name: name as SamplerName, ratio };
}

function readOtlpTracesUrl(env: Env, warnings: string[]): string {
  const protocol = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_PROTOCOL);
  if (protocol !== undefined && protocol !== 'http/json') {
    warnings.push(`OTEL_EXPORTER_OTLP_PROTOCOL="${protocol}" is not supported; spans are sent as http/json.`);
  }
  const signalUrl = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (signalUrl !== undefined) {
    if (isHttpUrl(signalUrl)) return signalUrl;
    warnings.push(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="${signalUrl}" is not an http(s) URL; ignoring it.`);
  }
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (base !== undefined && !isHttpUrl(base)) {
    warnings.push(`OTEL_EXPORTER_OTLP_ENDPOINT="${base}" is not an http(s) URL; using ${DEFAULT_OTLP_ENDPOINT}.`);
  }
  const root = base !== undefined && isHttpUrl(base) ? base : DEFAULT_OTLP_ENDPOINT;
  // The spec: the base endpoint gets the signal path appended, the per-signal one is used as is.
  return `${root.replace(/\/+$/, '')}/v1/traces`;
}

/** `key=value,key2=value2`, values URL-encoded, as the spec writes them. */
function readOtlpHeaders(value: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of (value ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const key = pair.slice(0, at).trim();
    const raw = pair.slice(at + 1).trim();
    if (!key) continue;
    try {
      headers[key] = decodeURIComponent(raw);
    } catch {
      headers[key] = raw;
    }
  }
  return headers;
}

function readPositiveInt(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return Number.isInteger(parsed) && parsed > 0 ? parsed : fallback;
}

function isHttpUrl(value: string): boolean {
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
