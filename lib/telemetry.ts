import {
  context,
  diag,
  DiagConsoleLogger,
  isSpanContextValid,
  propagation,
  SamplingDecision,
  trace,
  TraceFlags,
  type Context,
  type DiagLogger,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator } from '@opentelemetry/core';
import { AWSXRayPropagator } from '@opentelemetry/propagator-aws-xray';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SamplingResult,
  type Span as SdkSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { afterResponseLink, type ExportMode } from './export/after-response';
import { exportOnCrash } from './export/crash-export';
import { readTelemetryConfig, type TelemetryConfig } from './config';
import { InvocationSpanProcessor } from './export/invocation-span-processor';
import { ExportScheduler, type HeldSpans, type SandboxLife } from './export/export-scheduler';
import { createOtlpExporter } from './export/exporter-loader';
import { TraceContextPropagator } from './propagation/propagator';
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

const TRACER_NAME = 'traced-lambda';

/** The process-wide tracing set-up: one per Lambda sandbox, shared by every invocation it runs. */
export interface Telemetry {
  readonly config: TelemetryConfig;
  readonly tracer: Tracer;
  /**
   * Exports the ended spans of invocation `invocationId` (its Lambda request id) and those of no invocation, or
   * every span ended so far when no id is given; resolves within the configured flush timeout, or `maxWaitMs`
   * when that is shorter (what is left of the invocation's time), and never rejects.
   */
  flush(maxWaitMs?: number, invocationId?: string): Promise<void>;
  /**
   * Ends the spans of invocation `invocationId` still running (every running span when no id is given), each
   * marked by `mark` first; `outermost` says its parent is not among them. Returns how many it ended.
   */
  endRunningSpans(invocationId: string | undefined, mark: (span: SdkSpan, outermost: boolean) => void): number;
  /**
   * Where invocations export: `after-response` while the internal Lambda extension (extension/after-response.mjs)
   * serves events, `background` where the environment is never frozen (Lambda Managed Instances), `in-invocation`
   * (before the handler's result is returned) everywhere else.
   */
  exportMode(): ExportMode;
  /** When and where each invocation's spans leave the process: the wrappers say when an invocation begins and ends. */
  readonly exports: ExportScheduler;
  shutdown(): Promise<void>;
}

export interface StartTelemetryOptions {
  /** Replaces the exporter chosen by `OTEL_TRACES_EXPORTER` (tests, custom back ends). */
  exporter?: SpanExporter;
  /** More processors, called as spans start and end (the test kit records spans this way). */
  spanProcessors?: SpanProcessor[];
  /** Where diag messages go, filtered by OTEL_LOG_LEVEL (default: the console, i.e. the function's log). */
  logger?: DiagLogger;
}

let active: Telemetry | undefined;
let startsAhead = false;

/** The active set-up, started from `process.env` on first use. */
export function getTelemetry(): Telemetry {
  return (active ??= startTelemetry(readTelemetryConfig(process.env)));
}

/**
 * Called as each wrapper is made, while the handler module loads. Under a Lambda runtime, the set-up then starts in
 * the process's next turn, while the runtime waits for its first event, instead of inside the first invocation (the
 * set-up is a few milliseconds of a cold start, on a path that runs for the first time): where Lambda initialises a
 * sandbox ahead of its first request, it is off every invocation's path. By then the module's own synchronous code
 * has run, so a set-up the function starts itself (startTelemetry with options) comes first and is kept. Whatever
 * happens, the first invocation starts it as before.
 */
export function startAheadOfFirstInvocation(): void {
  if (startsAhead || active || !process.env.AWS_LAMBDA_RUNTIME_API) return;
  startsAhead = true;
  const start = () => {
    if (active) return;
    try {
      getTelemetry();
    } catch (error) {
      diag.error('traced-lambda: tracing could not start ahead of the first invocation; it starts with it', error);
    }
  };
  // After the extension's registration is answered, when it is not yet: Lambda starts the first invocation only once
  // the extension asks for its event too, and that request should not wait behind the set-up.
  const registration = afterResponseLink()?.settled;
  if (registration) void registration.then(() => setImmediate(start));
  else setImmediate(start);
}

/**
 * Starts tracing with an explicit configuration and makes it the active one: registers the tracer provider,
 * an AsyncLocalStorage context manager and the W3C propagators with the OpenTelemetry API, so that users'
 * own `@opentelemetry/api` calls see the same current span.
 */
export function startTelemetry(config: TelemetryConfig, options: StartTelemetryOptions = {}): Telemetry {
  // The SDK and the kit report through diag, which drops everything until a logger is registered: without this,
  // a failed export or a bad setting would never reach the function's log (CloudWatch Logs on AWS).
  diag.setLogger(options.logger ?? new DiagConsoleLogger(), { logLevel: config.logLevel, suppressOverrideMessage: true });
  for (const warning of config.warnings) diag.warn(`traced-lambda: ${warning}`);
  if (active) {
    // Replaced (tests, a custom set-up): export what the previous one holds and release its connections.
    active.exports.close();
    void active.shutdown().catch(() => undefined);
    trace.disable();
    context.disable();
    propagation.disable();
  }
  if (config.disabled) {
    // OTEL_SDK_DISABLED: nothing registered, so the API's no-op tracer makes non-recording spans and no
    // propagator writes a context into what the functions send.
    diag.info('traced-lambda: OTEL_SDK_DISABLED=true; tracing is off.');
    const none = () => Promise.resolve();
    // The extension, when registered, still follows the invocations (with nothing to export).
    const exports = startExports(config, none, none, undefined);
    active = {
      config,
      tracer: trace.getTracer(TRACER_NAME),
      flush: none,
      endRunningSpans: () => 0,
      exportMode: () => exports.mode(),
      exports,
      shutdown: none,
    };
    return active;
  }

  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  const exporting =
    config.exporter !== 'none' || options.exporter
      ? new InvocationSpanProcessor(() => options.exporter ?? createExporter(config), config.flushTimeoutMs)
      : undefined;
  if (exporting) spanProcessors.push(exporting);
  // The SDK's TracerProvider reads no environment variables: it gets what readTelemetryConfig already read.
  const provider = new TracerProvider({
    resource: createResource(config),
    spanProcessors,
    sampler: createSampler(config.sampler),
    spanLimits: config.spanLimits,
  });

  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const propagator = createPropagator(config.propagators);
  if (propagator) propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);

  const flush = flushAll(exporting, options.spanProcessors ?? []);
  const drain = (maxWaitMs: number) => (exporting ? exporting.drain(maxWaitMs) : flush(maxWaitMs));
  // The extension, when registered, exports through this set-up from now on; the mode is said in the log.
  const exports = startExports(config, flush, drain, exporting);
  const endRunningSpans: Telemetry['endRunningSpans'] = (invocationId, mark) => (exporting ? exporting.endRunning(invocationId, mark) : 0);
  // Under a Lambda runtime, an uncaught exception ends the process: the spans in flight are exported first.
  if (config.lambda.hasRuntimeApi && exporting) {
    exportOnCrash({
      endRunningSpans,
      exportBeforeCrash: (maxWaitMs) => exporting.exportBeforeCrash(maxWaitMs),
      exportBeforeExit: (maxWaitMs) => exporting.exportBeforeExit(maxWaitMs),
      flushTimeoutMs: config.flushTimeoutMs,
    });
  }
  const telemetry: Telemetry = {
    config,
    tracer: provider.getTracer(TRACER_NAME),
    flush,
    endRunningSpans,
    exportMode: () => exports.mode(),
    exports,
    shutdown: () => provider.shutdown(),
  };
  active = telemetry;
  return telemetry;
}

/** The set-up's export scheduler: its policy from the environment (Lambda Managed Instances never freeze one). */
function startExports(config: TelemetryConfig, flush: Telemetry['flush'], drain: (maxWaitMs: number) => Promise<void>, spans: HeldSpans | undefined) {
  const life: SandboxLife = config.lambda.initializationType === 'lambda-managed-instances' ? 'never-frozen' : 'frozen';
  return new ExportScheduler({
    settings: config.exportPolicy,
    life,
    exportTimeoutMs: config.flushTimeoutMs,
    flush,
    drain,
    spans,
    link: afterResponseLink(),
    hasRuntimeApi: config.lambda.hasRuntimeApi,
  });
}

function createExporter(config: TelemetryConfig): SpanExporter {
  return config.exporter === 'console' ? new ConsoleSpanExporter() : createOtlpExporter(config);
}

/** One flush function, without per-call allocations in the usual case (only the exporting processor). */
function flushAll(exporting: InvocationSpanProcessor | undefined, others: SpanProcessor[]) {
  const flushExporting = (maxWaitMs?: number, invocationId?: string) =>
    exporting ? exporting.flushWithin(maxWaitMs ?? Number.POSITIVE_INFINITY, invocationId) : Promise.resolve();
  if (others.length === 0) return flushExporting;
  return (maxWaitMs?: number, invocationId?: string) =>
    Promise.all([flushExporting(maxWaitMs, invocationId), ...others.map((processor) => processor.forceFlush())]).then(() => undefined);
}

/** OTEL_PROPAGATORS in order; `tracecontext` is the W3C propagator that keeps the level 2 random flag. */
function createPropagator(names: TelemetryConfig['propagators']): TextMapPropagator | undefined {
  const propagators = names.map((name) =>
    name === 'tracecontext' ? new TraceContextPropagator() : name === 'baggage' ? new W3CBaggagePropagator() : new AWSXRayPropagator(),
  );
  if (propagators.length <= 1) return propagators[0];
  return new CompositePropagator({ propagators });
}

function createSampler({ name, ratio }: TelemetryConfig['sampler']): Sampler {
  if (name === 'parentbased_always_on') return new ParentBasedAlwaysOnSampler();
  const root = name.endsWith('always_off')
    ? new AlwaysOffSampler()
    : name.endsWith('traceidratio')
      ? new TraceIdRatioBasedSampler(ratio)
      : new AlwaysOnSampler();
  return name.startsWith('parentbased_') ? new ParentBasedSampler({ root }) : root;
}

const SAMPLED: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED });
const NOT_SAMPLED: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD });

/**
 * `parentbased_always_on` (the default), deciding as the SDK's ParentBasedSampler with AlwaysOn/AlwaysOff does:
 * a sampled parent or none → sampled; a valid parent that is not sampled → not recorded; an invalid parent → a new
 * root, sampled. The SDK's version validates the parent's ids (two regular expressions) for every span, after the
 * tracer has just done the same; here only an unsampled parent, the rare case, is checked.
 */
class ParentBasedAlwaysOnSampler implements Sampler {
  shouldSample(ctx: Context): SamplingResult {
    const parent = trace.getSpanContext(ctx);
    if (!parent || (parent.traceFlags & TraceFlags.SAMPLED) !== 0) return SAMPLED;
    return isSpanContextValid(parent) ? NOT_SAMPLED : SAMPLED;
  }

  toString(): string {
    return 'ParentBased{root=AlwaysOnSampler, remoteParentSampled=AlwaysOnSampler, remoteParentNotSampled=AlwaysOffSampler, localParentSampled=AlwaysOnSampler, localParentNotSampled=AlwaysOffSampler}';
  }
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
  // OTEL_RESOURCE_ATTRIBUTES over what the kit detects; service.name as resolved (OTEL_SERVICE_NAME first).
  Object.assign(attributes, config.resourceAttributes, { [ATTR_SERVICE_NAME]: config.serviceName });
  return defaultResource().merge(resourceFromAttributes(attributes));
}
