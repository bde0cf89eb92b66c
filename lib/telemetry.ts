import { context, diag, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, ConsoleSpanExporter, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { readTelemetryConfig, type TelemetryConfig } from './config';
import { InvocationSpanProcessor } from './invocation-span-processor';
import {
  ATTR_CLOUD_PLATFORM,
  ATTR_CLOUD_PROVIDER,
  ATTR_CLOUD_REGION,
  ATTR_FAAS_INSTANCE,
  ATTR_FAAS_MAX_MEMORY,
  ATTR_FAAS_NAME,
  ATTR_FAAS_VERSION,
  ATTR_SERVICE_NAME,
} from './semconv';

export const TRACER_NAME = 'traced-lambda';

/** The process-wide tracing set-up: one per Lambda sandbox, shared by every invocation it runs. */
export interface Telemetry {
  readonly config: TelemetryConfig;
  readonly tracer: Tracer;
  /** Exports every span ended so far; resolves within the configured flush timeout and never rejects. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface StartTelemetryOptions {
  /** Replaces the exporter chosen by `OTEL_TRACES_EXPORTER` (tests, custom back ends). */
  exporter?: SpanExporter;
  /** More processors, called as spans start and end (the test kit records spans this way). */
  spanProcessors?: SpanProcessor[];
}

let active: Telemetry | undefined;

/** The active set-up, started from `process.env` on first use. */
export function getTelemetry(): Telemetry {
  return (active ??= startTelemetry(readTelemetryConfig(process.env)));
}

/**
 * Starts tracing with an explicit configuration and makes it the active one: registers the tracer provider,
 * an AsyncLocalStorage context manager and the W3C propagators with the OpenTelemetry API, so that users'
 * own `@opentelemetry/api` calls see the same current span.
 */
export function startTelemetry(config: TelemetryConfig, options: StartTelemetryOptions = {}): Telemetry {
  for (const warning of config.warnings) diag.warn(`traced-lambda: ${warning}`);
  if (active) {
    trace.disable();
    context.disable();
    propagation.disable();
  }

  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (config.exporter !== 'none' || options.exporter) {
    spanProcessors.push(new InvocationSpanProcessor(() => options.exporter ?? createExporter(config), config.flushTimeoutMs));
  }
  const provider = new BasicTracerProvider({ resource: createResource(config), spanProcessors });

  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  trace.setGlobalTracerProvider(provider);

  const telemetry: Telemetry = {
    config,
    tracer: provider.getTracer(TRACER_NAME),
    flush: () => Promise.all(spanProcessors.map((processor) => processor.forceFlush())).then(() => undefined),
    shutdown: () => provider.shutdown(),
  };
  active = telemetry;
  return telemetry;
}

function createExporter(config: TelemetryConfig): SpanExporter {
  if (config.exporter === 'console') return new ConsoleSpanExporter();
  // Loaded on the first flush: the OTLP exporter is not needed to start the function.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  return new OTLPTraceExporter({
    url: config.otlpTracesUrl,
    headers: config.otlpHeaders,
    timeoutMillis: config.flushTimeoutMs,
  });
}

function createResource(config: TelemetryConfig) {
  const { lambda } = config;
  const attributes: Record<string, string | number> = {
    [ATTR_SERVICE_NAME]: config.serviceName,
    [ATTR_CLOUD_PROVIDER]: 'aws',
    [ATTR_CLOUD_PLATFORM]: 'aws_lambda',
  };
  if (lambda.region) attributes[ATTR_CLOUD_REGION] = lambda.region;
  if (lambda.functionName) attributes[ATTR_FAAS_NAME] = lambda.functionName;
  if (lambda.functionVersion) attributes[ATTR_FAAS_VERSION] = lambda.functionVersion;
  if (lambda.logStreamName) attributes[ATTR_FAAS_INSTANCE] = lambda.logStreamName;
  if (lambda.memoryMb) attributes[ATTR_FAAS_MAX_MEMORY] = lambda.memoryMb * 1024 * 1024;
  return defaultResource().merge(resourceFromAttributes(attributes));
}
