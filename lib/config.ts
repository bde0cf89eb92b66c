/**
 * Telemetry configuration, read once from the standard `OTEL_*` variables and passed down.
 * Nothing else in lib/ reads `process.env`.
 */
import { DiagLogLevel } from '@opentelemetry/api';
import { diagLogLevelFromString, parseKeyPairsIntoRecord } from '@opentelemetry/core';
import type { SecretHeaderSource } from './export/secret-headers';
import { xraySigningRegion, type SigningConfig } from './export/sigv4';

const TRACES_EXPORTERS = ['otlp', 'console', 'none'] as const;
export type TracesExporterName = (typeof TRACES_EXPORTERS)[number];

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type SamplerName = (typeof SAMPLERS)[number];
export interface SamplerConfig {
  name: SamplerName;
  /** For the `traceidratio` samplers: the share of new traces kept, 0 to 1. */
  ratio: number;
}

const PROPAGATORS = ['tracecontext', 'baggage', 'xray'] as const;
export type PropagatorName = (typeof PROPAGATORS)[number];

/** The span limits of the SDK, from the OTEL_*_LIMIT variables (unset ones keep the SDK's defaults). */
export interface SpanLimitsConfig {
  attributeCountLimit?: number;
  attributeValueLengthLimit?: number;
  eventCountLimit?: number;
  linkCountLimit?: number;
  attributePerEventCountLimit?: number;
  attributePerLinkCountLimit?: number;
}

export interface TelemetryConfig {
  /** OTEL_SDK_DISABLED=true: no spans, no export, no context forwarded; handlers run as they are. */
  disabled: boolean;
  serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES, over the attributes the kit detects (service.name follows OTEL_SERVICE_NAME). */
  resourceAttributes: Record<string, string>;
  /** OTEL_PROPAGATORS, in order (default tracecontext, baggage); empty for `none`. */
  propagators: PropagatorName[];
  spanLimits: SpanLimitsConfig;
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
  /**
   * A header whose value the function reads from SSM Parameter Store or Secrets Manager (OTLP_SECRET_HEADER with
   * OTLP_SECRET_SSM_PARAMETER or OTLP_SECRET_ARN): never in the environment, only where it is kept.
   */
  otlpSecretHeader?: SecretHeaderSource;
  /** Upper bound for one end-of-invocation flush; a slow backend must not hold the function. */
  flushTimeoutMs: number;
  /**
   * How long before an invocation's deadline its spans still open are ended as timed out and exported
   * (TRACED_LAMBDA_TIMEOUT_GUARD_MS; 0 turns the guard off): Lambda stops a function at its deadline, and the
   * spans of an invocation that never ends would never be exported.
   */
  timeoutGuardMs: number;
  /** When spans leave the function (TRACED_LAMBDA_EXPORT_STRATEGY and TRACED_LAMBDA_EXPORT_MAX_DELAY_MS): see export-policy.ts. */
  exportPolicy: ExportPolicySettings;
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
  /** True when a Lambda runtime API serves this process (on AWS, or under a runtime interface client). */
  hasRuntimeApi: boolean;
  /** Invocations this process may run at once (AWS_LAMBDA_MAX_CONCURRENCY, Managed Instances); 1 otherwise. */
  maxConcurrency: number;
}

const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';
const DEFAULT_FLUSH_TIMEOUT_MS = 2000;
/** Chosen from measurements (docs/reference.md, "When an invocation runs out of time"). */
const DEFAULT_TIMEOUT_GUARD_MS = 150;
/** Chosen from measurements (docs/reference.md, "When spans are exported"). */
const DEFAULT_EXPORT_MAX_DELAY_MS = 1_000;
const EXPORT_STRATEGIES = ['adaptive', 'invocation', 'batched'] as const;
export type ExportStrategy = (typeof EXPORT_STRATEGIES)[number];

/**
 * When spans leave the function: `invocation` exports each invocation's spans when it ends; `batched` holds them
 * for one export shared with the invocations that follow, at most `maxDelayMs` after the first was held (or
 * `maxBatchSpans` spans); `adaptive` (the default) batches while invocations come densely and exports per invocation
 * while they are sparse. On Lambda Managed Instances, where the environment is never frozen, held spans are exported
 * in the background on the same bounds.
 */
export interface ExportPolicySettings {
  strategy: ExportStrategy;
  maxDelayMs: number;
  maxBatchSpans: number;
}
/** Spans held at most before an export goes out at once (the OTLP request stays far below CloudWatch's limits). */
const MAX_BATCH_SPANS = 2_048;

type Env = Record<string, string | undefined>;

export function readTelemetryConfig(env: Env): TelemetryConfig {
  const warnings: string[] = [];
  const lambda = readLambdaEnvironment(env);
  const exporter = readExporter(env.OTEL_TRACES_EXPORTER, warnings);
  const otlpTracesUrl = readOtlpTracesUrl(env, warnings);
  const resourceAttributes = parseKeyPairsIntoRecord(env.OTEL_RESOURCE_ATTRIBUTES);
  return {
    disabled: readBoolean('OTEL_SDK_DISABLED', env, warnings),
    serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ?? resourceAttributes['service.name'] ?? lambda.functionName ?? 'unknown_service',
    resourceAttributes,
    propagators: readPropagators(env.OTEL_PROPAGATORS, warnings),
    spanLimits: readSpanLimits(env, warnings),
    exporter,
    otlpTracesUrl,
    otlpCompression: readCompression(env, warnings),
    otlpSigning: exporter === 'otlp' ? readSigning(otlpTracesUrl, env, warnings) : undefined,
    otlpSecretHeader: readSecretHeader(env, warnings),
    sampler: readSampler(env, warnings),
    // The spec: the generic headers, then the traces-specific ones over them, key by key.
    otlpHeaders: { ...readOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS), ...readOtlpHeaders(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) },
    flushTimeoutMs: readPositiveInt(nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) ?? env.OTEL_EXPORTER_OTLP_TIMEOUT, DEFAULT_FLUSH_TIMEOUT_MS),
    timeoutGuardMs: readTimeoutGuard(env.TRACED_LAMBDA_TIMEOUT_GUARD_MS, warnings),
    exportPolicy: readExportPolicy(env, warnings),
    logLevel: readLogLevel(env.OTEL_LOG_LEVEL, warnings),
    warnings,
    lambda,
  };
}

/** A boolean variable as the spec reads it: `true` (any case) is true; anything but `false` or empty is reported. */
function readBoolean(name: string, env: Env, warnings: string[]): boolean {
  const value = nonEmpty(env[name])?.toLowerCase();
  if (value === 'true') return true;
  if (value !== undefined && value !== 'false') warnings.push(`${name}="${env[name]}" is not true or false; using false.`);
  return false;
}

function readPropagators(value: string | undefined, warnings: string[]): PropagatorName[] {
  const names = (value ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  if (names.length === 0) return ['tracecontext', 'baggage'];
  if (names.includes('none')) return [];
  const known = names.filter((name): name is PropagatorName => (PROPAGATORS as readonly string[]).includes(name));
  const unknown = names.filter((name) => !known.includes(name as PropagatorName));
  if (unknown.length > 0) warnings.push(`OTEL_PROPAGATORS: ${unknown.join(', ')} not supported (supported: ${PROPAGATORS.join(', ')}, none); ignored.`);
  return [...new Set(known)];
}

/** OTEL_SPAN_* limits first, then the general OTEL_ATTRIBUTE_* ones, as the spec orders them. */
function readSpanLimits(env: Env, warnings: string[]): SpanLimitsConfig {
  const limit = (...names: string[]) => {
    for (const name of names) {
      const value = nonEmpty(env[name]);
      if (value === undefined) continue;
      const parsed = Number(value);
      if (Number.isInteger(parsed) && parsed >= 0) return parsed;
      warnings.push(`${name}="${value}" is not a whole number; using the SDK's default.`);
    }
    return undefined;
  };
  const limits: SpanLimitsConfig = {
    attributeCountLimit: limit('OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT', 'OTEL_ATTRIBUTE_COUNT_LIMIT'),
    attributeValueLengthLimit: limit('OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT'),
    eventCountLimit: limit('OTEL_SPAN_EVENT_COUNT_LIMIT'),
    linkCountLimit: limit('OTEL_SPAN_LINK_COUNT_LIMIT'),
    attributePerEventCountLimit: limit('OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT'),
    attributePerLinkCountLimit: limit('OTEL_LINK_ATTRIBUTE_COUNT_LIMIT'),
  };
  return Object.fromEntries(Object.entries(limits).filter(([, value]) => value !== undefined));
}

function readCompression(env: Env, warnings: string[]): 'gzip' | 'none' {
  const value = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_COMPRESSION);
  if (value === undefined || value.toLowerCase() === 'none') return 'none';
  if (value.toLowerCase() === 'gzip') return 'gzip';
  warnings.push(`OTEL_EXPORTER_OTLP_COMPRESSION="${value}" is not gzip or none; sending uncompressed.`);
  return 'none';
}

function readSecretHeader(env: Env, warnings: string[]): SecretHeaderSource | undefined {
  const parameter = nonEmpty(env.OTLP_SECRET_SSM_PARAMETER);
  const secret = nonEmpty(env.OTLP_SECRET_ARN);
  if (!parameter && !secret) return undefined;
  const header = nonEmpty(env.OTLP_SECRET_HEADER) ?? 'x-api-key';
  if (parameter && secret) warnings.push('OTLP_SECRET_SSM_PARAMETER and OTLP_SECRET_ARN are both set; reading the SSM parameter.');
  return parameter ? { header, from: 'ssm', id: parameter } : { header, from: 'secretsmanager', id: secret! };
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
    hasRuntimeApi: nonEmpty(env.AWS_LAMBDA_RUNTIME_API) !== undefined,
    maxConcurrency: readPositiveInt(env.AWS_LAMBDA_MAX_CONCURRENCY, 1),
  };
}

function readExporter(value: string | undefined, warnings: string[]): TracesExporterName {
  // The spec allows a comma-separated list; one exporter per function is what we support.
  const names = (value ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
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

/** TRACED_LAMBDA_TIMEOUT_GUARD_MS: whole milliseconds, 0 for off. */
function readTimeoutGuard(value: string | undefined, warnings: string[]): number {
  const text = nonEmpty(value);
  if (text === undefined) return DEFAULT_TIMEOUT_GUARD_MS;
  const parsed = Number(text);
  if (Number.isInteger(parsed) && parsed >= 0) return parsed;
  warnings.push(`TRACED_LAMBDA_TIMEOUT_GUARD_MS="${text}" is not a whole number of milliseconds; using ${DEFAULT_TIMEOUT_GUARD_MS}.`);
  return DEFAULT_TIMEOUT_GUARD_MS;
}

/** TRACED_LAMBDA_EXPORT_STRATEGY (adaptive, invocation, batched) and TRACED_LAMBDA_EXPORT_MAX_DELAY_MS. */
function readExportPolicy(env: Env, warnings: string[]): ExportPolicySettings {
  const name = nonEmpty(env.TRACED_LAMBDA_EXPORT_STRATEGY)?.toLowerCase();
  let strategy: ExportStrategy = 'adaptive';
  if (name !== undefined && (EXPORT_STRATEGIES as readonly string[]).includes(name)) strategy = name as ExportStrategy;
  else if (name !== undefined) {
    warnings.push(`TRACED_LAMBDA_EXPORT_STRATEGY="${env.TRACED_LAMBDA_EXPORT_STRATEGY}" is not one of ${EXPORT_STRATEGIES.join(', ')}; using "adaptive".`);
  }
  const delay = nonEmpty(env.TRACED_LAMBDA_EXPORT_MAX_DELAY_MS);
  let maxDelayMs = DEFAULT_EXPORT_MAX_DELAY_MS;
  if (delay !== undefined) {
    const parsed = Number(delay);
    if (Number.isInteger(parsed) && parsed > 0) maxDelayMs = parsed;
    else warnings.push(`TRACED_LAMBDA_EXPORT_MAX_DELAY_MS="${delay}" is not a positive whole number of milliseconds; using ${DEFAULT_EXPORT_MAX_DELAY_MS}.`);
  }
  return { strategy, maxDelayMs, maxBatchSpans: MAX_BATCH_SPANS };
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
