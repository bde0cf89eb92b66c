import { describe, expect, it } from 'vitest';
import { readTelemetryConfig } from '../../lib/config';

describe('readTelemetryConfig', () => {
  it('defaults to OTLP on the local collector address, named after the function', () => {
    const config = readTelemetryConfig({ AWS_LAMBDA_FUNCTION_NAME: 'order-pipeline-dev-create-order' });

    expect(config.exporter).toBe('otlp');
    expect(config.otlpTracesUrl).toBe('http://localhost:4318/v1/traces');
    expect(config.serviceName).toBe('order-pipeline-dev-create-order');
    expect(config.warnings).toEqual([]);
  });

  it('appends the traces path to the base endpoint and uses the per-signal endpoint as is', () => {
    expect(readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).otlpTracesUrl).toBe('http://collector:4318/v1/traces');
    expect(
      readTelemetryConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://backend.example/ingest/traces',
      }).otlpTracesUrl,
    ).toBe('https://backend.example/ingest/traces');
  });

  it('reads the service name, exporter, headers and timeout', () => {
    const config = readTelemetryConfig({
      OTEL_SERVICE_NAME: 'orders',
      OTEL_TRACES_EXPORTER: 'Console',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=abc%3D%3D, tenant = blue ,broken',
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '500',
    });

    expect(config.serviceName).toBe('orders');
    expect(config.exporter).toBe('console');
    expect(config.otlpHeaders).toEqual({ 'x-api-key': 'abc==', tenant: 'blue' });
    expect(config.flushTimeoutMs).toBe(500);
  });

  it('turns export off with OTEL_TRACES_EXPORTER=none', () => {
    expect(readTelemetryConfig({ OTEL_TRACES_EXPORTER: 'none' }).exporter).toBe('none');
  });

  it('warns about values it cannot honour and falls back to working ones', () => {
    const config = readTelemetryConfig({
      OTEL_TRACES_EXPORTER: 'zipkin',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TIMEOUT: '-3',
    });

    expect(config.exporter).toBe('otlp');
    expect(config.otlpTracesUrl).toBe('http://localhost:4318/v1/traces');
    expect(config.flushTimeoutMs).toBe(2000);
    expect(config.warnings).toHaveLength(3);
    expect(config.warnings.join('\n')).toMatch(/zipkin/);
    expect(config.warnings.join('\n')).toMatch(/grpc/);
  });

  it('reads what the Lambda runtime says about the function', () => {
    const { lambda } = readTelemetryConfig({
      AWS_LAMBDA_FUNCTION_NAME: 'fn',
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_REGION: 'eu-west-1',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
      AWS_LAMBDA_INITIALIZATION_TYPE: 'provisioned-concurrency',
      AWS_LAMBDA_MAX_CONCURRENCY: '8',
    });

    expect(lambda).toMatchObject({
      maxConcurrency: 8,
      functionName: 'fn',
      functionVersion: '$LATEST',
      region: 'eu-west-1',
      memoryMb: 256,
      initializationType: 'provisioned-concurrency',
    });
  });

  it('reads the sampler and its ratio, and falls back to parent-based always-on', () => {
    expect(readTelemetryConfig({}).sampler).toEqual({ name: 'parentbased_always_on', ratio: 1 });
    expect(readTelemetryConfig({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).sampler).toEqual({
      name: 'parentbased_traceidratio',
      ratio: 0.25,
    });
    const wrong = readTelemetryConfig({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' });
    expect(wrong.sampler).toEqual({ name: 'traceidratio', ratio: 1 });
    expect(wrong.warnings.join()).toMatch(/OTEL_TRACES_SAMPLER_ARG/);
    expect(readTelemetryConfig({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }).sampler.name).toBe('parentbased_always_on');
  });
});
